"""API keys: creation (shown once, stored hashed), listing, revocation, budgets."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, or_, select, update

from gemgate.store.tables import api_keys, meta

KEY_PREFIX = "gg-"
SHOWN_PREFIX_LEN = 10
KEYS_GENERATION = "keys"


class KeyError_(LookupError):
    """A key operation named no key, or more than one."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: int
    name: str
    prefix: str
    key_hash: str
    models: tuple[str, ...] | None
    allowed_ips: tuple[str, ...] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    budget_nanos: int | None
    spent_nanos: int
    rpm: int | None = None  # requests per minute; None: no limit
    log_bodies: bool = False  # keep this key's bodies (redacted) in request_bodies


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    """In UTC: SQLite gives naive UTC times, PostgreSQL the session's time zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _record(row: object) -> KeyRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return KeyRecord(
        id=m["id"],
        name=m["name"],
        prefix=m["prefix"],
        key_hash=m["key_hash"],
        models=tuple(m["models"]) if m["models"] is not None else None,
        allowed_ips=tuple(m["allowed_ips"]) if m["allowed_ips"] is not None else None,
        expires_at=_aware(m["expires_at"]),
        revoked_at=_aware(m["revoked_at"]),
        created_at=_aware(m["created_at"]) or datetime.now(UTC),
        budget_nanos=m["budget_nanos"],
        spent_nanos=m["spent_nanos"] or 0,
        rpm=m["rpm"],
        log_bodies=bool(m["log_bodies"]),
    )


def bump_generation(conn: object, name: str = KEYS_GENERATION) -> None:
    """Tell every running server that cached keys are stale."""
    c = conn  # a Connection inside a transaction
    updated = c.execute(  # type: ignore[attr-defined]
        update(meta).where(meta.c.name == name).values(value=meta.c.value + 1)
    )
    if updated.rowcount == 0:
        c.execute(insert(meta).values(name=name, value=1))  # type: ignore[attr-defined]


def generation(engine: Engine, name: str = KEYS_GENERATION) -> int:
    with engine.connect() as conn:
        value = conn.execute(select(meta.c.value).where(meta.c.name == name)).scalar()
    return int(value or 0)


def create_key(
    engine: Engine,
    name: str,
    *,
    models: Iterable[str] | None = None,
    allowed_ips: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    budget_nanos: int | None = None,
    rpm: int | None = None,
    log_bodies: bool = False,
) -> tuple[str, KeyRecord]:
    """Create a key; returns the plain key (shown only now) and its record."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    values = {
        "name": name,
        "prefix": plain[:SHOWN_PREFIX_LEN],
        "key_hash": hash_key(plain),
        "models": list(models) if models is not None else None,
        "allowed_ips": list(allowed_ips) if allowed_ips is not None else None,
        "expires_at": expires_at,
        "created_at": datetime.now(UTC),
        "budget_nanos": budget_nanos,
        "spent_nanos": 0,
        "rpm": rpm,
        "log_bodies": log_bodies,
    }
    with engine.begin() as conn:
        exists = conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first()
        if exists:
            raise KeyError_(f"a key named {name!r} already exists")
        conn.execute(insert(api_keys).values(**values))
        bump_generation(conn)
        row = conn.execute(select(api_keys).where(api_keys.c.name == name)).one()
    return plain, _record(row)


def committed_spent(engine: Engine, key_id: int) -> int:
    """The key's committed costs as the database holds them now (0 for an unknown key).

    The ledger adds each usage record's cost to ``spent_nanos`` in the same transaction as
    the record, so this is the ledger's sum for the key, read by primary key.
    """
    with engine.connect() as conn:
        value = conn.execute(
            select(api_keys.c.spent_nanos).where(api_keys.c.id == key_id)
        ).scalar()
    return int(value or 0)


def list_keys(engine: Engine) -> list[KeyRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).all()
    return [_record(r) for r in rows]


def find_key(conn: object, name_or_prefix: str | int) -> KeyRecord:
    """The key with this id (an int), or this name or prefix (a str)."""
    if isinstance(name_or_prefix, int):
        where = api_keys.c.id == name_or_prefix
    else:
        where = or_(api_keys.c.name == name_or_prefix, api_keys.c.prefix == name_or_prefix)
    rows = conn.execute(select(api_keys).where(where)).all()  # type: ignore[attr-defined]
    if not rows:
        raise KeyError_(f"no key is named or starts with {name_or_prefix!r}")
    if len(rows) > 1:
        by_name = [r for r in rows if r._mapping["name"] == name_or_prefix]
        if len(by_name) == 1:
            return _record(by_name[0])
        raise KeyError_(f"{name_or_prefix!r} matches {len(rows)} keys; use the key's name")
    return _record(rows[0])


def revoke_key(engine: Engine, name_or_prefix: str | int) -> KeyRecord:
    with engine.begin() as conn:
        record = find_key(conn, name_or_prefix)
        conn.execute(
            update(api_keys).where(api_keys.c.id == record.id).values(revoked_at=datetime.now(UTC))
        )
        bump_generation(conn)
    return record


def top_up(engine: Engine, name_or_prefix: str | int, nanos: int) -> KeyRecord:
    """Raise a key's budget by ``nanos`` (a key without a budget gets one of ``nanos``)."""
    with engine.begin() as conn:
        record = find_key(conn, name_or_prefix)
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == record.id)
            .values(budget_nanos=func.coalesce(api_keys.c.budget_nanos, 0) + nanos)
        )
        bump_generation(conn)
        row = conn.execute(select(api_keys).where(api_keys.c.id == record.id)).one()
    return _record(row)


def set_rpm(engine: Engine, name_or_prefix: str | int, rpm: int | None) -> KeyRecord:
    """Set (or, with None, remove) a key's requests-per-minute limit."""
    with engine.begin() as conn:
        record = find_key(conn, name_or_prefix)
        conn.execute(update(api_keys).where(api_keys.c.id == record.id).values(rpm=rpm))
        bump_generation(conn)
        row = conn.execute(select(api_keys).where(api_keys.c.id == record.id)).one()
    return _record(row)


def get_key(engine: Engine, key_id: int) -> KeyRecord:
    with engine.connect() as conn:
        return find_key(conn, key_id)


UPDATABLE = frozenset({"name", "models", "allowed_ips", "expires_at", "budget_nanos", "rpm", "log_bodies"})


def update_key(engine: Engine, key_id: int, **values: object) -> KeyRecord:
    """Change some of a key's settings (the columns in :data:`UPDATABLE`); every server
    reloads its keys. A new name must not be another key's."""
    unknown = set(values) - UPDATABLE
    if unknown:
        raise ValueError(f"not a key setting: {sorted(unknown)[0]}")
    with engine.begin() as conn:
        record = find_key(conn, key_id)
        name = values.get("name")
        if name is not None and name != record.name:
            taken = conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first()
            if taken:
                raise KeyError_(f"a key named {name!r} already exists")
        for column in ("models", "allowed_ips"):
            if values.get(column) is not None:
                values[column] = list(values[column])  # type: ignore[call-overload]
        if values:
            conn.execute(update(api_keys).where(api_keys.c.id == record.id).values(**values))
            bump_generation(conn)
        row = conn.execute(select(api_keys).where(api_keys.c.id == record.id)).one()
    return _record(row)

"""Ephemeral Live API tokens, kept in the database so that every replica accepts them.

A token is minted for one API key with a number of uses (sessions it may start), a time
after which it starts no new session, a time after which its sessions end, and optionally
setup constraints its sessions are held to. Only its SHA-256 is stored; the token itself
is shown once, to the key that minted it. Starting a session spends one use in a single
conditional UPDATE, so two replicas can never both spend the last one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select, update

from gemgate.store.tables import live_tokens

TOKEN_PREFIX = "auth_tokens/"


@dataclass(frozen=True, slots=True)
class LiveToken:
    key_id: int
    expire_time: datetime
    new_session_expire_time: datetime
    uses_left: int
    setup: str | None  # JSON text of the locked setup; None: nothing locked
    field_mask: str | None  # comma-separated locked fields; None: the whole setup


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def mint(
    engine: Engine,
    key_id: int,
    *,
    uses: int,
    expire_time: datetime,
    new_session_expire_time: datetime,
    setup: str | None,
    field_mask: str | None,
) -> str:
    """A new token (its name, ``auth_tokens/...``, is the credential). Expired tokens are
    deleted on the way."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(delete(live_tokens).where(live_tokens.c.expire_time <= now))
        conn.execute(
            insert(live_tokens).values(
                token_hash=_hash(token), key_id=key_id, uses_left=uses,
                expire_time=expire_time, new_session_expire_time=new_session_expire_time,
                setup=setup, field_mask=field_mask, created_at=now,
            )
        )
    return token


def start_session(engine: Engine, token: str, now: datetime | None = None) -> LiveToken | None:
    """Spend one use of ``token`` to start a session; None when it is unknown, used up, past
    its new-session time or expired."""
    now = now or datetime.now(UTC)
    c = live_tokens.c
    digest = _hash(token)
    with engine.begin() as conn:
        spent = conn.execute(
            update(live_tokens)
            .where(
                c.token_hash == digest,
                c.uses_left > 0,
                c.new_session_expire_time > now,
                c.expire_time > now,
            )
            .values(uses_left=c.uses_left - 1)
        )
        if spent.rowcount != 1:
            return None
        row = conn.execute(select(live_tokens).where(c.token_hash == digest)).one()
    m = row._mapping
    return LiveToken(
        key_id=m["key_id"],
        expire_time=_aware(m["expire_time"]),
        new_session_expire_time=_aware(m["new_session_expire_time"]),
        uses_left=m["uses_left"],
        setup=m["setup"],
        field_mask=m["field_mask"],
    )


def prune(engine: Engine, now: datetime | None = None) -> int:
    """Delete expired tokens; how many were deleted."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(live_tokens).where(live_tokens.c.expire_time <= (now or datetime.now(UTC)))
        )
    return int(result.rowcount or 0)

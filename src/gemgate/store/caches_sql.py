"""Queries on cached contents and their upstream copies (blocking: run in a worker thread).

A cache is live until it expires or is deleted; then it stays (invisible) until its
storage has been billed up to its end, and is purged. ``billed_until`` only moves forward,
and only by the replica whose compare-and-set wins, so each period is billed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update

from gemgate.store.resource_tables import cache_copies, cached_contents

_C = cached_contents.c


@dataclass(frozen=True, slots=True)
class CacheRow:
    id: str
    key_id: int
    model: str
    display_name: str | None
    body: str
    tokens: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    billed_until: datetime
    deleted_at: datetime | None


def _row(r: Any) -> CacheRow:
    return CacheRow(**{c.name: getattr(r, c.name) for c in cached_contents.columns})


def create(engine: Engine, values: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(cached_contents).values(**values))


def owned(engine: Engine, key_id: int, cache_id: str, at: datetime) -> CacheRow | None:
    with engine.connect() as conn:
        r = conn.execute(
            select(cached_contents).where(
                _C.id == cache_id, _C.key_id == key_id, _C.deleted_at.is_(None), _C.expires_at > at
            )
        ).first()
    return _row(r) if r is not None else None


def page(
    engine: Engine, key_id: int, at: datetime, size: int, after: tuple[datetime, str] | None
) -> list[CacheRow]:
    cond = [_C.key_id == key_id, _C.deleted_at.is_(None), _C.expires_at > at]
    if after is not None:
        when, last = after
        cond.append(or_(_C.created_at < when, and_(_C.created_at == when, _C.id < last)))
    with engine.connect() as conn:
        rows = conn.execute(
            select(cached_contents).where(*cond).order_by(_C.created_at.desc(), _C.id.desc()).limit(size + 1)
        ).all()
    return [_row(r) for r in rows]


def set_expiry(engine: Engine, cache_id: str, expires: datetime, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(cached_contents).where(_C.id == cache_id).values(expires_at=expires, updated_at=at)
        )


def mark_deleted(engine: Engine, key_id: int, cache_id: str, at: datetime) -> bool:
    with engine.begin() as conn:
        done = conn.execute(
            update(cached_contents)
            .where(_C.id == cache_id, _C.key_id == key_id, _C.deleted_at.is_(None))
            .values(deleted_at=at, updated_at=at)
        )
    return bool(done.rowcount)


def billable(engine: Engine, before: datetime, at: datetime, limit: int = 500) -> list[CacheRow]:
    """Caches with storage to bill: billed up to before ``before`` (a day ago), or ended."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(cached_contents)
            .where(or_(_C.billed_until <= before, _C.deleted_at.is_not(None), _C.expires_at <= at))
            .limit(limit)
        ).all()
    return [_row(r) for r in rows]


def advance_billing(engine: Engine, cache_id: str, billed: datetime, until: datetime) -> bool:
    """Move ``billed_until`` from ``billed`` to ``until``; False when another replica did."""
    with engine.begin() as conn:
        done = conn.execute(
            update(cached_contents)
            .where(_C.id == cache_id, _C.billed_until == billed)
            .values(billed_until=until)
        )
    return bool(done.rowcount)


def purge(engine: Engine, cache_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(cached_contents).where(_C.id == cache_id))
        conn.execute(delete(cache_copies).where(cache_copies.c.cache_id == cache_id))


# --- upstream copies --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheCopy:
    holder: str
    channel: str
    upstream_name: str
    expires_at: datetime


def copies(engine: Engine, cache_id: str) -> list[CacheCopy]:
    c = cache_copies.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.holder, c.channel, c.upstream_name, c.expires_at).where(c.cache_id == cache_id)
        ).all()
    return [CacheCopy(r.holder, r.channel, r.upstream_name, r.expires_at) for r in rows]


def save_copy(engine: Engine, cache_id: str, copy: CacheCopy) -> None:
    c = cache_copies.c
    with engine.begin() as conn:
        conn.execute(delete(cache_copies).where(c.cache_id == cache_id, c.holder == copy.holder))
        conn.execute(
            insert(cache_copies).values(
                cache_id=cache_id,
                holder=copy.holder,
                channel=copy.channel,
                upstream_name=copy.upstream_name,
                expires_at=copy.expires_at,
            )
        )


def drop_copy(engine: Engine, cache_id: str, holder: str) -> None:
    c = cache_copies.c
    with engine.begin() as conn:
        conn.execute(delete(cache_copies).where(c.cache_id == cache_id, c.holder == holder))


def set_copy_expiry(engine: Engine, cache_id: str, holder: str, expires: datetime) -> None:
    c = cache_copies.c
    with engine.begin() as conn:
        conn.execute(
            update(cache_copies).where(c.cache_id == cache_id, c.holder == holder).values(expires_at=expires)
        )

"""Queries on batches and their items (blocking: run them in a worker thread).

A batch is worked by one replica at a time: the one holding its lease (``lease_owner``
until ``lease_until``). A lease is taken, renewed and given up by compare-and-set, so two
replicas never both hold one; a replica that dies leaves its lease to run out, and the
next replica to claim the batch resumes it from its unfinished items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update

from gemgate.store.resource_tables import batch_items, batches

_B = batches.c
_I = batch_items.c
TERMINAL = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: str
    key_id: int
    kind: str
    model: str
    display_name: str | None
    state: str
    input_file: str | None
    output_file: str | None
    item_count: int
    succeeded: int
    failed: int
    reserved_nanos: int
    channel: str | None
    holder: str | None
    upstream_name: str | None
    lease_owner: str | None
    lease_until: datetime | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    end_time: datetime | None
    expires_at: datetime

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True, slots=True)
class ItemRow:
    idx: int
    item_key: str | None
    request: str
    response: str | None
    error: str | None
    tries: int


def _batch(r: Any) -> BatchRow:
    return BatchRow(**{c.name: getattr(r, c.name) for c in batches.columns})


def create(engine: Engine, values: dict[str, Any], items: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(batches).values(**values))
        for start in range(0, len(items), 1000):
            conn.execute(insert(batch_items), items[start : start + 1000])


def get(engine: Engine, batch_id: str, key_id: int | None = None) -> BatchRow | None:
    cond = [_B.id == batch_id]
    if key_id is not None:
        cond.append(_B.key_id == key_id)
    with engine.connect() as conn:
        r = conn.execute(select(batches).where(*cond)).first()
    return _batch(r) if r is not None else None


def page(
    engine: Engine, key_id: int, size: int, after: tuple[datetime, str] | None
) -> list[BatchRow]:
    cond = [_B.key_id == key_id]
    if after is not None:
        when, last = after
        cond.append(or_(_B.created_at < when, and_(_B.created_at == when, _B.id < last)))
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches).where(*cond).order_by(_B.created_at.desc(), _B.id.desc()).limit(size + 1)
        ).all()
    return [_batch(r) for r in rows]


def items(engine: Engine, batch_id: str, pending_only: bool = False, limit: int | None = None) -> list[ItemRow]:
    cond = [_I.batch_id == batch_id]
    if pending_only:
        cond += [_I.response.is_(None), _I.error.is_(None)]
    query = select(_I.idx, _I.item_key, _I.request, _I.response, _I.error, _I.tries).where(*cond).order_by(_I.idx)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [ItemRow(r.idx, r.item_key, r.request, r.response, r.error, r.tries) for r in rows]


def pending_count(engine: Engine, batch_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(_I.batch_id == batch_id, _I.response.is_(None), _I.error.is_(None))
            ).scalar_one()
        )


def record_item(
    engine: Engine, batch_id: str, idx: int, *, response: str | None, error: str | None, at: datetime
) -> None:
    """An item's result, counted once into the batch's totals."""
    with engine.begin() as conn:
        done = conn.execute(
            update(batch_items)
            .where(_I.batch_id == batch_id, _I.idx == idx, _I.response.is_(None), _I.error.is_(None))
            .values(response=response, error=error)
        )
        if done.rowcount:
            counter = _B.succeeded if response is not None else _B.failed
            conn.execute(
                update(batches).where(_B.id == batch_id).values({counter: counter + 1, "updated_at": at})
            )


def add_try(engine: Engine, batch_id: str, idx: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(batch_items).where(_I.batch_id == batch_id, _I.idx == idx).values(tries=_I.tries + 1)
        )


def set_state(engine: Engine, batch_id: str, state: str, at: datetime, **values: Any) -> bool:
    """Move a batch that is not yet finished to ``state`` (False: it already was)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(batches)
            .where(_B.id == batch_id, _B.state.not_in(TERMINAL))
            .values(state=state, updated_at=at, **values)
        )
    return bool(done.rowcount)


def set_values(engine: Engine, batch_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(batches).where(_B.id == batch_id).values(**values))


def claimable(engine: Engine, owner: str, at: datetime, limit: int = 20) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(_B.id)
            .where(
                _B.state.not_in(TERMINAL),
                or_(_B.lease_owner.is_(None), _B.lease_owner == owner, _B.lease_until < at),
            )
            .order_by(_B.created_at)
            .limit(limit)
        ).all()
    return [r.id for r in rows]


def claim(engine: Engine, batch_id: str, owner: str, at: datetime, until: datetime) -> bool:
    """Take (or renew) the lease of an unfinished batch."""
    with engine.begin() as conn:
        done = conn.execute(
            update(batches)
            .where(
                _B.id == batch_id,
                _B.state.not_in(TERMINAL),
                or_(_B.lease_owner.is_(None), _B.lease_owner == owner, _B.lease_until < at),
            )
            .values(lease_owner=owner, lease_until=until)
        )
    return bool(done.rowcount)


def release(engine: Engine, batch_id: str, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(batches).where(_B.id == batch_id, _B.lease_owner == owner).values(lease_owner=None, lease_until=None)
        )


def remove(engine: Engine, key_id: int, batch_id: str) -> bool:
    with engine.begin() as conn:
        gone = conn.execute(delete(batches).where(_B.id == batch_id, _B.key_id == key_id))
        conn.execute(delete(batch_items).where(_I.batch_id == batch_id))
    return bool(gone.rowcount)

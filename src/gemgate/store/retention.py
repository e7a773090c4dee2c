"""Deleting what is older than the retention period, in small batches.

Each batch is its own short transaction deleting at most ``batch`` rows found through the
time index, so the ledger's writers never wait long behind it (SQLite has one writer at a
time; PostgreSQL locks only the deleted rows).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select

from gemgate.store.tables import request_bodies, usage_records


def _batches(
    engine: Engine, table: Any, pk: Any, when: Any, cutoff: datetime, batch: int,
    keep_going: Callable[[], bool],
) -> int:
    deleted = 0
    while keep_going():
        ids = select(pk).where(when < cutoff).limit(batch).scalar_subquery()
        with engine.begin() as conn:
            n = int(conn.execute(delete(table).where(pk.in_(ids))).rowcount or 0)
        deleted += n
        if n < batch:
            break
    return deleted


def prune_before(
    engine: Engine,
    cutoff: datetime,
    *,
    batch: int = 2000,
    keep_going: Callable[[], bool] = lambda: True,
) -> dict[str, int]:
    """Delete usage records that started, and stored bodies made, before ``cutoff``;
    ``keep_going`` is asked before each batch. Returns the rows deleted per table."""
    return {
        "usage_records": _batches(
            engine, usage_records, usage_records.c.id, usage_records.c.started_at,
            cutoff, batch, keep_going,
        ),
        "request_bodies": _batches(
            engine, request_bodies, request_bodies.c.request_id, request_bodies.c.created_at,
            cutoff, batch, keep_going,
        ),
    }

"""The request log: ``usage_records`` read one page at a time, newest first.

Newest is by start time, ties broken by id: ``(started_at, id)`` descending. Pages are
keyset pages named by id (``before``: the last id of the previous page, whose start time
the query looks up by primary key), never OFFSET, so page 1,000 costs what page 1 costs.
Each filter is an equality that an index of migration 0006 serves with ``(started_at,
id)`` after it, so a time window under any filter is one range of one index, read in page
order; see there for which indexes and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, literal, literal_column, select, tuple_

from gemgate.store.tables import request_bodies
from gemgate.store.tables import usage_records as u

MAX_PAGE = 500

LIST_COLUMNS = (
    "id", "request_id", "started_at", "key_id", "key_name", "model", "channel", "provider",
    "upstream_key", "door", "method", "status", "http_status", "error", "prompt_tokens",
    "cached_tokens", "thoughts_tokens", "output_text", "output_image", "output_audio",
    "total_tokens", "cost_nanos", "latency_ms", "ttfb_ms", "attempts", "streamed",
    "interrupted", "estimated",
)
STATUSES = ("ok", "error", "interrupted")
# Not "ok", written so that the partial index's predicate is seen to hold.
NOT_OK = u.c.status != literal_column("'ok'")


@dataclass(frozen=True, slots=True)
class LogFilter:
    key_id: int | None = None
    model: str | None = None
    channel: str | None = None
    door: str | None = None
    method: str | None = None
    status: str | None = None  # ok | error | interrupted | failed (anything but ok)
    http_status: int | None = None
    error: str | None = None  # a piece of the error text, any case
    since: datetime | None = None
    until: datetime | None = None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _where(f: LogFilter) -> list[Any]:
    terms: list[Any] = []
    for column, value in (
        (u.c.key_id, f.key_id), (u.c.model, f.model), (u.c.channel, f.channel),
        (u.c.door, f.door), (u.c.method, f.method), (u.c.http_status, f.http_status),
    ):
        if value is not None:
            terms.append(column == value)
    if f.status == "failed" or f.error is not None or f.status in ("error", "interrupted"):
        terms.append(NOT_OK)  # only failed rows carry an error text
    if f.status in STATUSES:
        terms.append(u.c.status == f.status)
    if f.error is not None:
        terms.append(u.c.error.icontains(f.error, autoescape=True))
    if f.since is not None:
        terms.append(u.c.started_at >= _utc(f.since))
    if f.until is not None:
        terms.append(u.c.started_at < _utc(f.until))
    return terms


def page_statement(f: LogFilter, before: int | None, limit: int) -> Any:
    """The SELECT for one page (one row more than ``limit``, to tell whether more follow)."""
    stmt = select(*(u.c[name] for name in LIST_COLUMNS)).where(*_where(f))
    if before is not None:
        at = select(u.c.started_at).where(u.c.id == before).scalar_subquery()
        stmt = stmt.where(tuple_(u.c.started_at, u.c.id) < tuple_(at, literal(before)))
    return stmt.order_by(u.c.started_at.desc(), u.c.id.desc()).limit(limit + 1)


def _row(mapping: Any) -> dict[str, Any]:
    row = {str(k): v for k, v in mapping.items()}  # plain str keys (not quoted_name)
    for name in ("started_at", "finished_at"):
        if isinstance(row.get(name), datetime):
            row[name] = _utc(row[name]).isoformat().replace("+00:00", "Z")
    for name in ("streamed", "interrupted", "estimated"):
        if name in row:
            row[name] = bool(row[name])
    return row


def search(
    engine: Engine, f: LogFilter, *, before: int | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of records matching ``f``, newest first, and the ``before`` of the next
    page (None on the last). A ``before`` naming no record gives an empty page."""
    limit = max(1, min(limit, MAX_PAGE))
    with engine.connect() as conn:
        rows = conn.execute(page_statement(f, before, limit)).all()
    more = len(rows) > limit
    page = [_row(r._mapping) for r in rows[:limit]]
    return page, (page[-1]["id"] if more else None)


def record(engine: Engine, record_id: int) -> dict[str, Any] | None:
    """One record in full, with its failed attempts and, when they were kept, its bodies."""
    with engine.connect() as conn:
        row = conn.execute(select(u).where(u.c.id == record_id)).first()
        if row is None:
            return None
        body = conn.execute(
            select(request_bodies.c.request, request_bodies.c.response).where(
                request_bodies.c.request_id == row.request_id
            )
        ).first()
    out = _row(row._mapping)
    failed = out.pop("failed_attempts", None)
    out["failed_attempts"] = orjson.loads(failed) if failed else []
    out["bodies"] = {"request": body.request, "response": body.response} if body else None
    return out

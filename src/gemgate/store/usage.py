"""Usage reports: sums of the ledger, filtered and grouped.

Times are stored in UTC; a day is a UTC calendar day on every database, and ``since`` /
``until`` given with another offset are converted to UTC before they are compared.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, func, select

from gemgate.store.tables import usage_records as u

SUMMED = (
    "prompt_tokens",
    "prompt_text",
    "prompt_image",
    "prompt_audio",
    "prompt_video",
    "prompt_document",
    "cached_tokens",
    "tool_use_prompt_tokens",
    "thoughts_tokens",
    "output_text",
    "output_image",
    "output_audio",
    "total_tokens",
    "cost_nanos",
)
GROUP_BY = ("day", "hour", "model", "key", "channel")
GROUPS = {"model": u.c.model, "key": u.c.key_name, "channel": u.c.channel}


def parse_when(text: str) -> datetime:
    """An ISO date (midnight UTC) or date-time (UTC when it has no offset); ValueError if not."""
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _time_column(engine: Engine, group_by: str) -> Any:
    """The UTC day ("YYYY-MM-DD") or hour ("YYYY-MM-DD HH:00") a record started in."""
    if engine.dialect.name == "postgresql":
        # to_char of a timestamptz follows the session's time zone: pin it to UTC.
        pattern = "YYYY-MM-DD" if group_by == "day" else "YYYY-MM-DD HH24:00"
        return func.to_char(func.timezone("UTC", u.c.started_at), pattern)
    # SQLite keeps the UTC wall-clock time as text: "YYYY-MM-DD HH:MM:SS.ffffff".
    text = func.cast(u.c.started_at, u.c.model.type)
    if group_by == "day":
        return func.substr(text, 1, 10)
    return func.substr(text, 1, 13).concat(":00")


def report(
    engine: Engine,
    *,
    key: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: str | None = None,
    channel: str | None = None,
) -> list[dict[str, Any]]:
    """One row per group (or one row overall): request count, failed requests, token sums,
    cost in nanos. Days and hours are UTC."""
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}")
    columns: list[Any] = []
    group_col: Any = None
    if group_by in ("day", "hour"):
        group_col = _time_column(engine, group_by)
    elif group_by is not None:
        group_col = GROUPS[group_by]
    if group_col is not None:
        group_col = group_col.label(group_by)
        columns.append(group_col)
    columns.append(func.count().label("requests"))
    columns.append(func.count().filter(u.c.status == "error").label("errors"))
    columns.append(func.sum(func.cast(u.c.interrupted, u.c.id.type)).label("interrupted"))
    columns.append(func.sum(func.cast(u.c.estimated, u.c.id.type)).label("estimated"))
    columns.extend(func.coalesce(func.sum(getattr(u.c, name)), 0).label(name) for name in SUMMED)
    stmt = select(*columns)
    if key:
        stmt = stmt.where(u.c.key_name == key)
    if model:
        stmt = stmt.where(u.c.model == model)
    if channel:
        stmt = stmt.where(u.c.channel == channel)
    if since:
        stmt = stmt.where(u.c.started_at >= _utc(since))
    if until:
        stmt = stmt.where(u.c.started_at < _utc(until))
    if group_col is not None:
        stmt = stmt.group_by(group_col).order_by(group_col)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for row in rows:
        data = dict(row._mapping)
        data["requests"] = int(data["requests"])
        for name in ("errors", "interrupted", "estimated", *SUMMED):
            data[name] = int(data.get(name) or 0)  # PostgreSQL sums are Decimal
        if group_by is None and data["requests"] == 0:
            continue
        out.append(data)
    return out


def records(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(u).order_by(u.c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]

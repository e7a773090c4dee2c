"""Usage reports: sums of the ledger, filtered and grouped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from gemgate.store.tables import usage_records as u

SUMMED = (
    "prompt_tokens", "cached_tokens", "tool_use_prompt_tokens", "thoughts_tokens",
    "output_text", "output_image", "output_audio", "total_tokens", "cost_nanos",
)
GROUPS = {"model": u.c.model, "key": u.c.key_name}


def report(
    engine: Engine,
    *,
    key: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: str | None = None,
) -> list[dict[str, Any]]:
    """One row per group (or one row overall): request count, token sums, cost in nanos."""
    columns: list[Any] = []
    group_col: Any = None
    if group_by == "day":
        group_col = func.substr(func.cast(u.c.started_at, u.c.model.type), 1, 10)
        if engine.dialect.name == "postgresql":
            group_col = func.to_char(u.c.started_at, "YYYY-MM-DD")
    elif group_by is not None:
        group_col = GROUPS[group_by]
    if group_col is not None:
        columns.append(group_col.label(group_by))
    columns.append(func.count().label("requests"))
    columns.append(func.sum(func.cast(u.c.interrupted, u.c.id.type)).label("interrupted"))
    columns.append(func.sum(func.cast(u.c.estimated, u.c.id.type)).label("estimated"))
    columns.extend(func.coalesce(func.sum(getattr(u.c, name)), 0).label(name) for name in SUMMED)
    stmt = select(*columns)
    if key:
        stmt = stmt.where(u.c.key_name == key)
    if model:
        stmt = stmt.where(u.c.model == model)
    if since:
        stmt = stmt.where(u.c.started_at >= since)
    if until:
        stmt = stmt.where(u.c.started_at < until)
    if group_col is not None:
        stmt = stmt.group_by(group_col).order_by(group_col)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for row in rows:
        data = dict(row._mapping)
        for name in ("interrupted", "estimated", *SUMMED):
            data[name] = int(data.get(name) or 0)
        if group_by is None and data["requests"] == 0:
            continue
        out.append(data)
    return out


def records(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(u).order_by(u.c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]

"""Usage reports as ``gemgate usage`` and the admin API give them: the ledger's sums from
:func:`gemgate.store.usage.report`, each cost also as a decimal USD string, and the same
CSV for both."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import Engine

from gemgate.billing import format_usd
from gemgate.store import usage as usage_store

COLUMNS = (
    "requests", "errors", "prompt_tokens", "cached_tokens", "tool_use_prompt_tokens",
    "thoughts_tokens", "output_text", "output_image", "output_audio", "total_tokens",
    "interrupted", "estimated", "cost_usd",
)
# A cell a spreadsheet would read as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def report_rows(engine: Engine, **filters: Any) -> list[dict[str, Any]]:
    rows = usage_store.report(engine, **filters)
    for row in rows:
        row["cost_usd"] = format_usd(row["cost_nanos"])
    return rows


def columns(group_by: str | None) -> list[str]:
    return ([group_by] if group_by else []) + list(COLUMNS)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]], group_by: str | None) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=columns(group_by), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()

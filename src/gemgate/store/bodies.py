"""Stored request and response bodies (already redacted by their writer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from gemgate.store.tables import request_bodies


def insert_bodies(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows of ``request_bodies`` (a request id seen before is skipped)."""
    if not rows:
        return
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(request_bodies).on_conflict_do_nothing(index_elements=["request_id"])
    with engine.begin() as conn:
        conn.execute(stmt, list(rows))

"""The request log's queries are index range reads in page order (no table scan, no sort
of all matching rows), on PostgreSQL (with the benchmark's rows and statistics)
and on SQLite. Timings are the benchmark's (python -m bench.admin_log), not asserted here."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from bench.admin_log import FILL, SERVER, queries
from sqlalchemy import Engine, text

from gemgate.store import make_engine, migrate
from gemgate.store.request_log import LogFilter, page_statement

ROWS = 100_000


def explain(engine: Engine, stmt: Any, prefix: str) -> list[str]:
    sql = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        return [str(r[-1]) for r in conn.execute(text(f"{prefix} {sql}")).all()]


@pytest.fixture(scope="module")
def pg() -> Iterator[Engine]:
    name = f"gemgate_test_plans_{secrets.token_hex(4)}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"{SERVER}/{name}")
    try:
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(text(FILL), {"start": datetime.now(UTC) - timedelta(days=30),
                                      "span": 30 * 86400, "n": ROWS})
        with engine.connect() as conn:
            conn.execute(text("ANALYZE usage_records"))
            conn.commit()
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.parametrize("label", [label for label, _f in queries(datetime.now(UTC))])
def test_postgres_pages_read_an_index_in_order(pg: Engine, label: str) -> None:
    f = dict(queries(datetime.now(UTC)))[label]
    for before in (None, ROWS // 2):
        plan = "\n".join(explain(pg, page_statement(f, before, 50), "EXPLAIN"))
        # In page order off the index; a filter matching few rows may instead collect
        # them through the same index (bitmap) and sort that handful.
        in_order = "Index Scan Backward using ix_usage_records_" in plan and "Sort" not in plan
        few = "Bitmap Index Scan on ix_usage_records_" in plan
        assert in_order or few, plan
        assert "Seq Scan on usage_records" not in plan, plan


def test_sqlite_pages_read_an_index_in_order(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/plans.db")
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    for f, index in (
        (LogFilter(), "ix_usage_records_started_id"),
        (LogFilter(key_id=3), "ix_usage_records_key_started"),
        (LogFilter(model="m"), "ix_usage_records_model_started"),
        (LogFilter(channel="c/x"), "ix_usage_records_channel_started"),
        (LogFilter(status="failed"), "ix_usage_records_failed_started"),
        (LogFilter(error="boom"), "ix_usage_records_failed_started"),
    ):
        plan = " ".join(explain(engine, page_statement(f, 10, 50), "EXPLAIN QUERY PLAN"))
        assert f"USING INDEX {index}" in plan, (f, plan)
        assert "TEMP B-TREE" not in plan, (f, plan)
    engine.dispose()

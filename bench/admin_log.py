"""``python -m bench.admin_log [--rows N] [--keep]``: the request log's queries at scale.

Creates a throwaway PostgreSQL database on 127.0.0.1:5432 (trust auth), migrates it, fills
``usage_records`` with N rows (default 1,000,000) in one ``INSERT ... SELECT
generate_series`` (30 days of traffic: 50 keys, 6 models, 8 channels, 2 doors, 4 methods,
about 2% errors), then times each query the console's log page makes (first page and a
deep keyset page per filter) and prints the figures and the plans' index use. It also
times the ledger's insert of 256-row batches with and without the log indexes, which is
what the indexes cost the write path (against the two single-column indexes they replace). Not part of ``python -m bench``: filling and
indexing a million rows takes about a minute.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import text

from gemgate.store import make_engine, migrate
from gemgate.store.request_log import LogFilter, page_statement
from gemgate.store.tables import usage_records

SERVER = "postgresql://postgres@127.0.0.1:5432"
LOG_INDEXES = (
    "ix_usage_records_started_id", "ix_usage_records_model_started",
    "ix_usage_records_key_started", "ix_usage_records_channel_started",
    "ix_usage_records_failed_started",
)

FILL = """
INSERT INTO usage_records (
  request_id, key_id, key_name, model, provider, door, method, status, http_status,
  prompt_tokens, prompt_text, output_text, total_tokens, cost_nanos, latency_ms, ttfb_ms,
  error, channel, upstream_key, attempts, started_at, finished_at)
SELECT
  'bench-' || g, 1 + (g::bigint * 7919) % 50, 'key-' || (1 + (g::bigint * 7919) % 50),
  (ARRAY['gemini-2.5-flash','gemini-2.5-pro','gemini-2.5-flash-lite','gpt-4o-mini',
         'claude-sonnet','gemma-3-270m'])[1 + (g * 31) % 6],
  'google', CASE WHEN g % 5 = 0 THEN 'openai' ELSE 'gemini' END,
  (ARRAY['generateContent','streamGenerateContent','chat.completions','embedContent'])[1 + g % 4],
  CASE WHEN g % 50 = 0 THEN 'error' WHEN g % 397 = 0 THEN 'interrupted' ELSE 'ok' END,
  CASE WHEN g % 50 = 0 THEN (ARRAY[429, 500, 503, 504])[1 + (g / 50) % 4]
       WHEN g % 397 = 0 THEN 499 ELSE 200 END,
  100 + g % 900, 100 + g % 900, 20 + g % 400, 120 + g % 1300, 300::bigint * (120 + g % 1300),
  50 + g % 2000, 20 + g % 300,
  CASE WHEN g % 50 = 0 THEN 'upstream answered ' || (ARRAY['429 quota','500 internal',
       '503 overloaded','504 deadline'])[1 + (g / 50) % 4] END,
  -- channel 8 is a fallback that serves one request in a thousand
  CASE WHEN g % 1000 = 0 THEN 'fallback/gemini-2.5-pro'
       ELSE (ARRAY['google/a','google/b','google/c','google/d','vertex/a','vertex/b',
                   'openai/a'])[1 + (g * 13) % 7] END,
  'K' || (1 + g % 3), 1,
  :start + (g::bigint * :span / :n) * interval '1 second',
  :start + (g::bigint * :span / :n) * interval '1 second' + interval '1 second'
FROM generate_series(1, :n) AS g
"""


def queries(now: datetime) -> list[tuple[str, LogFilter]]:
    return [
        ("no filter", LogFilter()),
        ("one key", LogFilter(key_id=17)),
        ("one model", LogFilter(model="gemini-2.5-pro")),
        ("one channel", LogFilter(channel="google/c")),
        ("rare channel (0.1%)", LogFilter(channel="fallback/gemini-2.5-pro")),
        ("failed only", LogFilter(status="failed")),
        ("status error", LogFilter(status="error")),
        ("error text", LogFilter(error="overloaded")),
        ("HTTP 503", LogFilter(http_status=503, status="failed")),
        ("door openai", LogFilter(door="openai")),
        ("method embedContent", LogFilter(method="embedContent")),
        ("last hour", LogFilter(since=now - timedelta(hours=1))),
        ("one day, 20 days ago", LogFilter(since=now - timedelta(days=21), until=now - timedelta(days=20))),
        ("key + model (no match)", LogFilter(key_id=17, model="gemini-2.5-pro")),
        ("key + last day", LogFilter(key_id=17, since=now - timedelta(days=1))),
        ("model + failed", LogFilter(model="gemini-2.5-flash", status="failed")),
    ]


def _time(conn: Any, stmt: Any, repeat: int) -> tuple[float, list[Any]]:
    runs = []
    rows: list[Any] = []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = conn.execute(stmt).all()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs), rows


def _plan(conn: Any, stmt: Any) -> str:
    compiled = stmt.compile(conn.engine, compile_kwargs={"literal_binds": True})
    lines = conn.execute(text(f"EXPLAIN {compiled}")).scalars().all()
    used = sorted({w.strip('"') for line in lines for w in line.split() if w.startswith(("ix_", "usage_records_pkey"))})
    return ", ".join(used) or "no index (" + lines[0].split("(")[0].strip() + ")"


def write_cost(engine: Any, batches: int = 40) -> dict[str, float]:
    """Median ms to insert a 256-row batch, with the log indexes and without them."""
    from gemgate.store.ledger_sql import LedgerStatements

    statements = LedgerStatements(engine.dialect)
    now = datetime.now(UTC)

    def batch(tag: str, i: int) -> list[dict[str, Any]]:
        base: dict[str, Any] = {c.name: 0 for c in usage_records.columns if c.name != "id"}
        base.update(estimated=False, interrupted=False, streamed=False, ttfb_ms=None, error=None,
                    failed_attempts=None, key_name="k", model="gemini-2.5-flash", provider="google",
                    door="gemini", method="generateContent", status="ok", http_status=200,
                    channel="google/a", upstream_key="K1", started_at=now, finished_at=now)
        return [{**base, "request_id": f"w-{tag}-{i}-{j}", "key_id": 1 + j % 50} for j in range(256)]

    def run(tag: str) -> float:
        raw = engine.raw_connection()
        try:
            times = []
            for i in range(batches):
                cur = raw.cursor()
                started = time.perf_counter()
                statements.write(cur, batch(tag, i))
                raw.commit()
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times)
        finally:
            raw.close()

    with_indexes = run("with")
    with engine.begin() as conn:
        for name in LOG_INDEXES:
            conn.execute(text(f"DROP INDEX {name}"))
        conn.execute(text("CREATE INDEX ix_usage_records_model ON usage_records (model)"))
        conn.execute(text("CREATE INDEX ix_usage_records_started_at ON usage_records (started_at)"))
    without = run("without")
    return {"with_log_indexes_ms": with_indexes, "without_ms": without}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.admin_log", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=7, help="runs per query (the median is shown)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = p.parse_args(argv)
    name = f"gemgate_bench_log_{secrets.token_hex(4)}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"{SERVER}/{name}")
    try:
        migrate(engine)
        now = datetime.now(UTC)
        start = now - timedelta(days=30)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text(FILL), {"start": start, "span": 30 * 86400, "n": args.rows})
        fill_s = time.perf_counter() - started
        with engine.connect() as conn:
            conn.execute(text("ANALYZE usage_records"))
            conn.commit()
        print(f"filled {args.rows:,} rows in {fill_s:.1f} s (indexes included); PostgreSQL "
              f"{engine.dialect.server_version_info}")
        print("\n| query | first page (ms) | page 200 deep (ms) | rows | plan |\n|---|---:|---:|---:|---|")
        worst = 0.0
        with engine.connect() as conn:
            for label, f in queries(now):
                first_ms, rows = _time(conn, page_statement(f, None, 50), args.repeat)
                # A deep page: the cursor 200 pages (10,000 matching rows) in, or the last.
                deep_rows = conn.execute(page_statement(f, None, 10_000)).all()
                cursor = deep_rows[-1].id if deep_rows else None
                deep_ms, _ = _time(conn, page_statement(f, cursor, 50), args.repeat)
                worst = max(worst, first_ms, deep_ms)
                print(f"| {label} | {first_ms:.2f} | {deep_ms:.2f} | {min(len(rows), 50)} | "
                      f"{_plan(conn, page_statement(f, None, 50))} |")
        print(f"\nslowest: {worst:.2f} ms (target < 100 ms)")
        cost = write_cost(engine)
        print(f"ledger insert, 256-row batch (median): {cost['with_log_indexes_ms']:.2f} ms with "
              f"the log indexes, {cost['without_ms']:.2f} ms without")
        return 0 if worst < 100 else 1
    finally:
        engine.dispose()
        if not args.keep:
            with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())

"""Gateways for the billing tests: the real server as a subprocess, with its own config and
database, in front of the fake Google upstream; and ways to read what it recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, select
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

from gemgate.store.tables import api_keys, usage_records

ADMIN_KEY_VAR = "GEMGATE_TEST_ADMIN_KEY"
ADMIN_KEY = "admin-key-for-tests-0123456789"
MODEL = "gemini-2.5-flash"
# gemini-2.5-flash list prices in nanos per token: $0.30 / 1M input, $2.50 / 1M output.
INPUT_NANOS = 300
OUTPUT_NANOS = 2500

T = TypeVar("T")


def config(
    fake: FakeGemini,
    *,
    database_url: str = "sqlite:///{DIR}/gemgate.db",
    redis_url: str | None = None,
    redis_prefix: str | None = None,
) -> str:
    text = f"""
[server]
host = "127.0.0.1"
port = {{PORT}}

[database]
url = "{database_url}"

[admin]
key = "env:{ADMIN_KEY_VAR}"
log_retention_days = 0  # the report tests seed records from long ago

[[providers]]
name = "google"
type = "gemini"
base_url = "{fake.base_url}"
api_key = "env:{UPSTREAM_KEY_VAR}"

[[models]]
id = "{MODEL}"
provider = "google"

[[models]]
id = "gemini-2.5-pro"
provider = "google"
"""
    if redis_url:
        text += f'\n[redis]\nurl = "{redis_url}"\n'
        if redis_prefix:
            text += f'prefix = "{redis_prefix}"\n'
    return text


def start(workdir: Path, fake: FakeGemini, **options: Any) -> GatewayProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {UPSTREAM_KEY_VAR: fake.api_key, ADMIN_KEY_VAR: ADMIN_KEY}
    return GatewayProcess(workdir, config(fake, **options), env=env).start()


def sqlite_url(gw: GatewayProcess) -> str:
    return f"sqlite:///{gw.workdir}/gemgate.db"


def records(db_url: str, **where: Any) -> list[dict[str, Any]]:
    """Usage records, oldest first, optionally filtered by column values."""
    engine = create_engine(db_url)
    try:
        stmt = select(usage_records).order_by(usage_records.c.id)
        for name, value in where.items():
            stmt = stmt.where(usage_records.c[name] == value)
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]
    finally:
        engine.dispose()


def spent_nanos(db_url: str, key_name: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            value = conn.execute(
                select(api_keys.c.spent_nanos).where(api_keys.c.name == key_name)
            ).scalar_one()
        return int(value)
    finally:
        engine.dispose()


def keys_json(gw: GatewayProcess) -> dict[str, dict[str, Any]]:
    return {k["name"]: k for k in json.loads(gw.cli("keys", "list", "--json").stdout)}


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, what: str = "it") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def text_cost(prompt_tokens: int, output_tokens: int) -> int:
    """Nanos for a text-only gemini-2.5-flash request (no cache, no thoughts)."""
    return prompt_tokens * INPUT_NANOS + output_tokens * OUTPUT_NANOS


def usd(nanos: int) -> str:
    whole, frac = divmod(nanos, 1_000_000_000)
    return f"{whole}.{frac:09d}"


def stream_events(count: int, text: str = "tok", prompt: int = 7, per_event: int = 5) -> list[dict]:
    """``count`` stream events with cumulative usage (``per_event`` output tokens each);
    the last carries finishReason STOP."""
    events = []
    for i in range(count):
        cand: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        if i == count - 1:
            cand["finishReason"] = "STOP"
        out = per_event * (i + 1)
        events.append(
            {
                "candidates": [cand],
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": out,
                    "totalTokenCount": prompt + out,
                },
                "modelVersion": MODEL,
            }
        )
    return events

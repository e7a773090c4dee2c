"""A gateway for the Anthropic door's tests: the real server as a subprocess in front of the
fake Google upstream, the fake Anthropic upstream and the local model, and ways to read
what it recorded."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from tests.conftest import UPSTREAM_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

ANTHROPIC_KEY = "sk-ant-upstream-secret-0123456789"
ANTHROPIC_KEY_VAR = "GEMGATE_TEST_ANTHROPIC_KEY"
# claude-sonnet-4-6 list prices in nanos per token: $3 / 1M input, $15 / 1M output, $0.30 cached.
SONNET_INPUT, SONNET_OUTPUT, SONNET_CACHED = 3000, 15000, 300

CONFIG = """
[server]
host = "127.0.0.1"
port = {PORT}
max_body_mb = 2

[database]
url = "sqlite:///{DIR}/gemgate.db"

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "%(google)s"
api_key = "env:%(google_var)s"

[[providers]]
name = "claude"
type = "anthropic"
base_url = "%(anthropic)s"
api_key = "env:%(anthropic_var)s"

[[providers]]
name = "local"
type = "local"

[[models]]
id = "gemini-2.5-flash"
provider = "google"

[[models]]
id = "gemini-2.5-pro"
provider = "google"

[[models]]
id = "claude-sonnet-4-6"
provider = "claude"
upstream_model = "claude-test"

[[models]]
id = "claude-test"
provider = "claude"

[[models]]
id = "gemma-3-270m"
provider = "local"
"""


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def agw(
    fake_google: FakeGemini, fake_anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    text = CONFIG % {
        "google": fake_google.base_url, "google_var": UPSTREAM_KEY_VAR,
        "anthropic": fake_anthropic.base_url, "anthropic_var": ANTHROPIC_KEY_VAR,
    }
    proc = GatewayProcess(
        tmp_path_factory.mktemp("anthropic-gateway"),
        text,
        env={UPSTREAM_KEY_VAR: UPSTREAM_KEY, ANTHROPIC_KEY_VAR: ANTHROPIC_KEY},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def akey(agw: GatewayProcess) -> str:
    return agw.create_key("anthropic-door")


@pytest.fixture
def client(agw: GatewayProcess, akey: str, fake_anthropic: FakeAnthropic) -> anthropic.Anthropic:
    fake_anthropic.reset()
    return anthropic.Anthropic(api_key=akey, base_url=agw.base_url, max_retries=0)


def records(gw: GatewayProcess, **where: Any) -> list[dict[str, Any]]:
    """Usage records, oldest first, filtered by column values."""
    clause = " AND ".join(f"{k} = ?" for k in where) or "1 = 1"
    with sqlite3.connect(gw.workdir / "gemgate.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(f"SELECT * FROM usage_records WHERE {clause} ORDER BY id", tuple(where.values()))
        return [dict(r) for r in rows]


def record(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    found = records(gw, request_id=request_id)
    assert len(found) == 1, f"{len(found)} records for {request_id}"
    return found[0]

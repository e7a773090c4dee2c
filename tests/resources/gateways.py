"""A gateway for the resource tests: two fake Google projects (``google``, ``google-b``),
the local model and a fake OpenAI upstream, with files in the gateway's work directory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from google import genai
from sqlalchemy import create_engine, select
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

from gemgate.store.tables import usage_records

OPENAI_KEY_VAR = "GEMGATE_TEST_OPENAI_KEY"
UPSTREAM_KEY = "upstream-secret-key-AIzaSyFAKE0123456789"
OPENAI_KEY = "sk-upstream-openai-secret-0123456789"
T = TypeVar("T")

CONFIG = """
[server]
host = "127.0.0.1"
port = {{PORT}}
max_body_mb = 2
{server_extra}

[database]
url = "{database_url}"

[files]
dir = "{{DIR}}/files"
{files_extra}

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "{google}"
api_key = "env:{key_var}"

[[providers]]
name = "google-b"
type = "gemini"
base_url = "{google_b}"
api_key = "env:{key_var}"

[[providers]]
name = "local"
type = "local"

[[providers]]
name = "oai"
type = "openai"
base_url = "{openai}"
api_key = "env:{openai_var}"

[[models]]
id = "gemini-2.5-flash"
provider = "google"

[[models]]
id = "dual-flash"
catalog = "gemini-2.5-flash"
channels = [
  {{ provider = "google", upstream_model = "gemini-2.5-flash", priority = 0 }},
  {{ provider = "google-b", upstream_model = "gemini-2.5-flash", priority = 1 }},
]

[[models]]
id = "gemini-embedding-001"
provider = "google"

[[models]]
id = "gemma-3-270m"
provider = "local"

[[models]]
id = "gpt-4o-mini"
provider = "oai"
[models.price]
input = "0.15"
output = "0.60"
"""


def start(
    workdir: Path,
    google: FakeGemini,
    google_b: FakeGemini,
    openai: FakeOpenAI,
    *,
    database_url: str = "sqlite:///{DIR}/gemgate.db",
    server_extra: str = "",
    files_extra: str = "",
    tables: str = "",
) -> GatewayProcess:
    """``tables``: more config tables, appended (e.g. ``[batches]``)."""
    text = CONFIG.format(
        server_extra=server_extra,
        database_url=database_url,
        files_extra=files_extra,
        google=google.base_url,
        google_b=google_b.base_url,
        key_var=UPSTREAM_KEY_VAR,
        openai=openai.base_url,
        openai_var=OPENAI_KEY_VAR,
    ) + "\n" + tables + "\n"
    proc = GatewayProcess(workdir, text, env={UPSTREAM_KEY_VAR: UPSTREAM_KEY, OPENAI_KEY_VAR: OPENAI_KEY})
    return proc.start()


def client(gw: GatewayProcess, key: str, version: str = "v1", prefix: str = "/gemini") -> genai.Client:
    return genai.Client(
        api_key=key, http_options={"api_version": version, "base_url": gw.base_url + prefix}
    )


def records(gw: GatewayProcess, where: Any = None) -> list[dict[str, Any]]:
    engine = create_engine(f"sqlite:///{gw.workdir}/gemgate.db")
    try:
        query = select(usage_records).order_by(usage_records.c.id)
        if where is not None:
            query = query.where(where)
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()


def eventually(check: Callable[[], T | None], timeout: float = 20.0, every: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)

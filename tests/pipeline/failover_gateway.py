"""A gateway whose models are served by several channels over faulty fake upstreams.

Two fake Google projects, ``a`` and ``b``, each its own provider; providers ``pool`` and
``pool2`` each hold two keys for project ``a``; ``nokey`` points at a port nothing listens on. Each test uses
a model of its own, so that one test's failures never open a circuit another test uses.
Run on SQLite, or on PostgreSQL + Redis.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from tests.billing.gateways import records
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess, free_port

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
KEY_A, KEY_B = "AIzaSyFAKE-project-a-0123456789", "AIzaSyFAKE-project-b-0123456789"
KEY_POOL_1, KEY_POOL_2 = "AIzaSyFAKE-pool-first-0123456", "AIzaSyFAKE-pool-second-012345"
UPSTREAM = "gemini-2.5-flash"
FIRST_TOKEN_TIMEOUT_S = 1
UPSTREAM_TIMEOUT_S = 2
COOLDOWN_S = 3.0

# model id -> channels, as TOML inline tables
PAIR = '[{provider = "a", upstream_model = "gemini-2.5-flash", priority = 0}, {provider = "b", upstream_model = "gemini-2.5-flash", priority = 1}]'
MODELS: dict[str, str] = {
    name: PAIR
    for name in (
        "fo-500", "fo-503", "fo-hang", "fo-reset", "fo-cut", "fo-error-event", "fo-client",
        "fo-unary-hang", "fo-breaker", "fo-stream-500", "fo-ledger",
        "fo-refused", "fo-big-event", "fo-unfinished",
    )
}
MODELS["fo-retry-after"] = '[{provider = "solo", upstream_model = "gemini-2.5-flash"}]'
# Keys rest provider-wide: the all-429 test has providers of its own.
MODELS["fo-all-429"] = PAIR.replace('"a"', '"a429"').replace('"b"', '"b429"')
MODELS["fo-pool"] = '[{provider = "pool", upstream_model = "gemini-2.5-flash"}]'
MODELS["fo-pool-429"] = '[{provider = "pool2", upstream_model = "gemini-2.5-flash"}]'
MODELS["fo-weights"] = '[{provider = "a", upstream_model = "gemini-2.5-flash", weight = 3}, {provider = "b", upstream_model = "gemini-2.5-flash", weight = 1}]'
MODELS["fo-sticky"] = '[{provider = "a", upstream_model = "gemini-2.5-flash"}, {provider = "b", upstream_model = "gemini-2.5-flash"}]'
MODELS["fo-dead-first"] = '[{provider = "nowhere", upstream_model = "gemini-2.5-flash"}, {provider = "b", upstream_model = "gemini-2.5-flash", priority = 1}]'


def config(a: FakeGemini, b: FakeGemini, database_url: str, redis_url: str | None) -> str:
    dead = f"http://127.0.0.1:{free_port()}"
    text = f"""
[server]
host = "127.0.0.1"
port = {{PORT}}
upstream_timeout_s = {UPSTREAM_TIMEOUT_S}

[database]
url = "{database_url}"

[routing]
first_token_timeout_s = {FIRST_TOKEN_TIMEOUT_S}
circuit_failures = 2
circuit_cooldown_s = {COOLDOWN_S}

[[providers]]
name = "a"
type = "gemini"
base_url = "{a.base_url}"
api_key = "env:KEY_A"

[[providers]]
name = "b"
type = "gemini"
base_url = "{b.base_url}"
api_key = "env:KEY_B"

[[providers]]
name = "a429"
type = "gemini"
base_url = "{a.base_url}"
api_key = "env:KEY_A"

[[providers]]
name = "b429"
type = "gemini"
base_url = "{b.base_url}"
api_key = "env:KEY_B"

[[providers]]
name = "solo"
type = "gemini"
base_url = "{a.base_url}"
api_key = "env:KEY_A"

[[providers]]
name = "pool"
type = "gemini"
base_url = "{a.base_url}"
api_keys = ["env:KEY_POOL_1", "env:KEY_POOL_2"]

[[providers]]
name = "pool2"
type = "gemini"
base_url = "{a.base_url}"
api_keys = ["env:KEY_POOL_1", "env:KEY_POOL_2"]

[[providers]]
name = "nowhere"
type = "gemini"
base_url = "{dead}"
api_key = "env:KEY_A"
"""
    if redis_url:
        text += f'\n[redis]\nurl = "{redis_url}"\nprefix = "gemgate-fo-{secrets.token_hex(4)}"\n'
    for model, channels in MODELS.items():
        text += f'\n[[models]]\nid = "{model}"\ncatalog = "gemini-2.5-flash"\nchannels = {channels}\n'
    text += '\n[[models]]\nid = "fo-sticky-on"\ncatalog = "gemini-2.5-flash"\nsticky = true\n'
    text += f"channels = {MODELS['fo-sticky']}\n"
    return text


class Deployment:
    def __init__(self, gw: GatewayProcess, db_url: str, key: str) -> None:
        self.gw = gw
        self.db_url = db_url
        self.key = key

    def post(self, model: str, body: dict[str, Any] | None = None, *, stream: bool = False,
             timeout: float = 30.0) -> httpx.Response:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return httpx.post(
            f"{self.gw.base_url}/v1beta/models/{model}:{method}",
            json=body or hello(),
            headers={"x-goog-api-key": self.key},
            timeout=timeout,
        )

    def record(self, resp: httpx.Response) -> dict[str, Any]:
        rid = resp.headers["x-gemgate-request-id"]
        rows = records(self.db_url, request_id=rid)
        assert len(rows) == 1, rows
        row = rows[0]
        row["failed"] = json.loads(row["failed_attempts"]) if row["failed_attempts"] else []
        return row


def hello(text: str = "hello there") -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def sse_events(resp: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in resp.text.split("\r\n") if line.startswith("data: ")]


@contextmanager
def deployment(
    backend: str, a: FakeGemini, b: FakeGemini, workdir: Path
) -> Iterator[Deployment]:
    env = {"KEY_A": KEY_A, "KEY_B": KEY_B, "KEY_POOL_1": KEY_POOL_1, "KEY_POOL_2": KEY_POOL_2}
    if backend == "sqlite":
        url = f"sqlite:///{workdir}/gemgate.db"
        gw = GatewayProcess(workdir, config(a, b, url, None), env=env).start()
        try:
            yield Deployment(gw, url, gw.create_key("failover"))
        finally:
            gw.stop()
        return
    name = f"gemgate_fo_{secrets.token_hex(5)}"
    with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_SERVER}/{name}"
    gw = GatewayProcess(workdir, config(a, b, url, REDIS_URL), env=env)
    try:
        gw.start()
        yield Deployment(gw, url.replace("postgresql://", "postgresql+psycopg://"), gw.create_key("failover"))
    finally:
        gw.stop()
        with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        for k in client.scan_iter(match="gemgate-fo-*", count=500):
            client.delete(k)
        client.close()

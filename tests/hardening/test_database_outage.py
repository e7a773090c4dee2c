"""A database outage is never paid for without a record: with the ledger's database down
or hung, requests are refused with 503 BEFORE the upstream call; the ones already in flight
are answered 503 within a bound (their answers withheld) and recorded once the database is
back; and the gateway recovers by itself. Real PostgreSQL, behind a proxy the test controls
(the shared server is never stopped)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.billing.gateways import MODEL, records, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess
from tests.hardening.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

SERVER = "postgresql://postgres@127.0.0.1:5432"
PATH = f"/v1beta/models/{MODEL}:generateContent"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
# In-flight requests learn within the ledger's retry window plus one cut-off attempt.
IN_FLIGHT_BOUND_S = 25.0


@pytest.fixture
def database() -> Iterator[str]:
    name = f"gemgate_test_{secrets.token_hex(5)}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", 5432) as p:
        yield p


@pytest.fixture
def gw(fake_google: FakeGemini, tmp_path: Path, database: str, proxy: TcpProxy) -> Iterator[GatewayProcess]:
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
    proc = start(tmp_path / "gw", fake_google, database_url=url)
    yield proc
    proc.stop()


def post(gw: GatewayProcess, key: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    resp = httpx.post(gw.base_url + PATH, json=HELLO, headers={"x-goog-api-key": key}, timeout=60)
    return resp, time.monotonic() - started


def assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    err = resp.json()["error"]
    assert err["status"] == "UNAVAILABLE" and err["code"] == 503
    assert int(resp.headers["retry-after"]) >= 1


def upstream_calls(fake: FakeGemini) -> int:
    return len([r for r in fake.requests if r.rpc])


def recover(gw: GatewayProcess, key: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        resp, _ = post(gw, key)
        if resp.status_code == 200:
            return
        assert time.monotonic() < deadline, f"no recovery: {resp.status_code} {resp.text}"
        time.sleep(0.5)


@pytest.mark.parametrize("failure", ["blackhole", "down"])
def test_an_outage_is_refused_before_the_upstream_and_heals(
    gw: GatewayProcess, fake_google: FakeGemini, proxy: TcpProxy, database: str, failure: str
) -> None:
    key = gw.create_key("outage")
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    assert post(gw, key)[0].status_code == 200

    getattr(proxy, failure)()
    fake_google.clear()
    # A request the gateway admitted before it knew: answered 503 in bounded time, never
    # 200 (its record could not be committed) and never a 500.
    first, took = post(gw, key)
    assert_unavailable(first)
    assert took < IN_FLIGHT_BOUND_S
    paid = upstream_calls(fake_google)
    assert paid <= 1
    # Once the ledger is known to be failing, requests are refused at once, unpaid.
    for _ in range(5):
        resp, took = post(gw, key)
        assert_unavailable(resp)
        assert took < 2.0
    assert upstream_calls(fake_google) == paid
    assert httpx.get(gw.base_url + "/healthz", timeout=5).status_code == 200

    proxy.forward()
    recover(gw, key)
    # What the upstream was paid for during the outage is recorded, late.
    if paid:
        rid = first.headers["x-gemgate-request-id"]
        deadline = time.monotonic() + 10
        while not records(db_url, request_id=rid):
            assert time.monotonic() < deadline, "the in-flight request was never recorded"
            time.sleep(0.2)

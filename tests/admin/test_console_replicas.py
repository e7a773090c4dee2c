"""Two replicas on one database: what the console changes on one, the other follows
within a second (keys through the keys change counter, channel and upstream key switches
through the channels counter), with no restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from tests.admin.console_gateway import MODEL, Browser, admin, generate, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

FOLLOW_S = 1.0


@pytest.fixture(scope="module")
def replicas(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayProcess]]:
    base = tmp_path_factory.mktemp("replicas")
    url = f"sqlite:///{base}/shared.db"
    procs = [start(base / f"r{i}", fake_google, database_url=url) for i in range(2)]
    yield procs
    for p in procs:
        p.stop()


def within(seconds: float, check: Callable[[], bool]) -> float:
    """How long ``check`` took to hold (fails past ``seconds``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "the other replica did not follow in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_key_changes_reach_the_other_replica(replicas: list[GatewayProcess]) -> None:
    a, b = replicas
    created = admin(a).post("/keys", json={"name": "both"}).json()
    within(FOLLOW_S, lambda: generate(b, created["key"]).status_code == 200)
    admin(a).post(f"/keys/{created['record']['id']}/revoke")
    within(FOLLOW_S, lambda: generate(b, created["key"]).status_code == 403)


def test_channel_switches_reach_the_other_replica(replicas: list[GatewayProcess]) -> None:
    a, b = replicas
    plain = admin(b).post("/keys", json={"name": "switch-both"}).json()["key"]
    browser = Browser(a)
    assert generate(b, plain).status_code == 200
    browser.post("/channels/state", {"channel": f"google/{MODEL}", "enabled": False})
    within(FOLLOW_S, lambda: generate(b, plain).status_code == 503)
    state = {c["channel"]: c["enabled"] for c in admin(b).get("/channels").json()["channels"]}
    assert state[f"google/{MODEL}"] is False
    browser.post("/channels/state", {"channel": f"google/{MODEL}", "enabled": True})
    within(FOLLOW_S, lambda: generate(b, plain).status_code == 200)


def test_a_session_opened_on_one_replica_works_on_the_other(replicas: list[GatewayProcess]) -> None:
    a, b = replicas
    browser = Browser(a)
    cookie = browser.set_cookie.split(";")[0]
    other = admin(b)
    other.headers.pop("authorization")
    resp = other.post("/keys", json={"name": "via-b"}, headers={
        "cookie": cookie, "x-gemgate-csrf": browser.csrf, "origin": b.base_url})
    assert resp.status_code == 201, resp.text

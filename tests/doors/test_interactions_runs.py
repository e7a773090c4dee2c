"""Background interactions across replicas, with the real google-genai SDK against two real
gateway processes sharing one database (SQLite) and one fake Google upstream: a run whose
gateway is killed outright is stored as failed once its lease runs out (GET never reports
a dead run as running); a cancel that reaches the replica not running it stops the run on
its owner, and a run that finishes afterwards never overwrites the cancel. Also: a unary
create whose client goes away cancels the upstream call and is recorded as interrupted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.genai._interactions import BadRequestError
from tests.billing.gateways import wait_for
from tests.conftest import UPSTREAM_KEY
from tests.doors.anthropic_gateway import records
from tests.doors.test_interactions import sdk
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

CONFIG = """
[server]
host = "127.0.0.1"
port = {PORT}

[database]
url = "sqlite:///%(db)s"

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "%(google)s"
api_key = "env:%(google_var)s"

[[models]]
id = "gemini-2.5-flash"
provider = "google"
"""

LEASE_WAIT_S = 25.0  # the lease (8 s) plus a sweep's period (15 s), with room


class Pair:
    def __init__(self, root: Path, fake: FakeGemini) -> None:
        (root / "a").mkdir()
        (root / "b").mkdir()
        text = CONFIG % {"db": root / "a" / "gemgate.db", "google": fake.base_url, "google_var": UPSTREAM_KEY_VAR}
        env = {UPSTREAM_KEY_VAR: UPSTREAM_KEY}
        self.a = GatewayProcess(root / "a", text, env=env)
        self.b = GatewayProcess(root / "b", text, env=env)


@pytest.fixture(scope="module")
def pair(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    both = Pair(tmp_path_factory.mktemp("interaction-runs"), fake_google)
    both.a.start()
    both.b.start()
    yield both
    both.a.stop()
    both.b.stop()


@pytest.fixture(scope="module")
def key(pair: Pair) -> str:
    return pair.a.create_key("runs")


def _reached(fake: FakeGemini, text: str) -> bool:
    return any(r.path == "/v1beta/interactions" and text in json.dumps(r.json) for r in fake.requests)


def _interactions(pair: Pair) -> list[dict[str, object]]:
    return records(pair.a, door="interactions")  # one database: every replica's records


def test_cancel_on_the_other_replica_stops_the_owner(pair: Pair, key: str, fake_google: FakeGemini) -> None:
    on_a, on_b = sdk(pair.a, key), sdk(pair.b, key)
    before = len(_interactions(pair))
    fake_google.script_interaction(delay=30)
    try:
        run = on_a.interactions.create(model="gemini-2.5-flash", input="stop me elsewhere", background=True)
        wait_for(lambda: _reached(fake_google, "stop me elsewhere"))
        assert on_b.interactions.cancel(run.id).status == "cancelled"
        # The owner reads the cancel as it renews its lease: the upstream call is cancelled
        # and recorded as interrupted long before the upstream would have answered.
        assert fake_google.wait_disconnects(1, timeout=8)
        wait_for(lambda: len(_interactions(pair)) > before, timeout=8)
    finally:
        fake_google.set_delay(0)
    rec = _interactions(pair)[-1]
    assert rec["status"] == "interrupted" and rec["interrupted"] == 1
    assert on_a.interactions.get(run.id).status == "cancelled"
    assert on_b.interactions.get(run.id).status == "cancelled"


def test_a_run_ending_after_a_remote_cancel_keeps_the_cancel(pair: Pair, key: str, fake_google: FakeGemini) -> None:
    on_a, on_b = sdk(pair.a, key), sdk(pair.b, key)
    before = len(_interactions(pair))
    fake_google.script_interaction(delay=1.0)  # ends before the owner's next renewal reads the cancel
    try:
        run = on_a.interactions.create(model="gemini-2.5-flash", input="too late", background=True)
        wait_for(lambda: _reached(fake_google, "too late"))
        assert on_b.interactions.cancel(run.id).status == "cancelled"
        wait_for(lambda: len(_interactions(pair)) > before, timeout=8)  # the upstream answered
    finally:
        fake_google.set_delay(0)
    assert _interactions(pair)[-1]["status"] == "ok"  # paid for: recorded as such
    got = on_a.interactions.get(run.id)
    assert got.status == "cancelled" and not got.output_text  # the late answer did not overwrite it


def test_a_killed_replica_s_run_is_failed_not_running(pair: Pair, key: str, fake_google: FakeGemini) -> None:
    on_a, on_b = sdk(pair.a, key), sdk(pair.b, key)
    fake_google.set_delay(60)
    try:
        run = on_a.interactions.create(model="gemini-2.5-flash", input="die with me", background=True)
        wait_for(lambda: _reached(fake_google, "die with me"))
        pair.a.kill9()
        assert on_b.interactions.get(run.id).status == "in_progress"  # its lease still holds
        got = wait_for(lambda: (g := on_b.interactions.get(run.id)).status != "in_progress" and g,
                       timeout=LEASE_WAIT_S, what="the lost run to be failed")
    finally:
        fake_google.set_delay(0)
        pair.a.start()
    assert got.status == "failed"
    assert got.errors and "stopped" in (got.errors[0].message or "")
    # the restarted replica agrees, and a cancel is refused: nothing runs
    assert sdk(pair.a, key).interactions.get(run.id).status == "failed"
    with pytest.raises(BadRequestError):
        on_b.interactions.cancel(run.id)


def test_unary_client_gone_cancels_the_upstream_call(pair: Pair, key: str, fake_google: FakeGemini) -> None:
    before = len(_interactions(pair))
    fake_google.script_interaction(delay=30)
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{pair.b.base_url}/v1beta/interactions", headers={"x-goog-api-key": key}, timeout=1.5,
                       json={"model": "gemini-2.5-flash", "input": "i will not wait"})
        assert fake_google.wait_disconnects(1, timeout=8)
        wait_for(lambda: len(_interactions(pair)) > before, timeout=8)
    finally:
        fake_google.set_delay(0)
    rec = _interactions(pair)[-1]
    assert rec["method"] == "interactions.create" and rec["status"] == "interrupted" and rec["interrupted"] == 1
    assert rec["prompt_tokens"] > 0  # estimated: the upstream saw the prompt


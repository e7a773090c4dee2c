"""Fault injection: models served by several channels over faulty upstreams.

Each test scripts a fault on the first channel's upstream and asserts who answered, what
the client got, and the ledger: one record per admitted request, naming the channel and
key that answered, with the failed attempts kept and never billed. The whole module runs
on SQLite and on PostgreSQL + Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.billing.gateways import records, stream_events, text_cost
from tests.fakes.gemini_upstream import FakeGemini
from tests.pipeline.failover_gateway import (
    COOLDOWN_S,
    FIRST_TOKEN_TIMEOUT_S,
    KEY_A,
    KEY_B,
    KEY_POOL_1,
    KEY_POOL_2,
    UPSTREAM,
    UPSTREAM_TIMEOUT_S,
    Deployment,
    deployment,
    hello,
    sse_events,
)

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


@pytest.fixture(scope="module")
def fake_a() -> Iterator[FakeGemini]:
    with FakeGemini(KEY_A, KEY_POOL_1, KEY_POOL_2) as fake:
        yield fake


@pytest.fixture(scope="module")
def fake_b() -> Iterator[FakeGemini]:
    with FakeGemini(KEY_B) as fake:
        yield fake


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])],
)
def dep(
    request: pytest.FixtureRequest,
    fake_a: FakeGemini,
    fake_b: FakeGemini,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    with deployment(request.param, fake_a, fake_b, tmp_path_factory.mktemp(request.param)) as d:
        yield d


@pytest.fixture(autouse=True)
def _fresh(fake_a: FakeGemini, fake_b: FakeGemini) -> None:
    fake_a.reset()
    fake_b.reset()


def calls(fake: FakeGemini) -> int:
    return sum(1 for r in fake.requests if r.rpc is not None)


def error(status: int, message: str = "boom", **extra: Any) -> dict[str, Any]:
    names = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}
    return {"code": status, "message": message, "status": names.get(status, "UNKNOWN"), **extra}


def answered_by_b(dep: Deployment, resp: httpx.Response, failed_error: str) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    row = dep.record(resp)
    assert row["status"] == "ok"
    assert row["channel"] == f"b/{UPSTREAM}" and row["provider"] == "b"
    assert row["upstream_key"] == "KEY_B"
    assert row["attempts"] == 2
    assert [(f["channel"], f["error"]) for f in row["failed"]] == [(f"a/{UPSTREAM}", failed_error)]
    return row


# --- failures before the first byte fail over -----------------------------------------------


@pytest.mark.parametrize("status,kind", [(500, "server"), (503, "server")])
def test_5xx_fails_over(dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini, status: int, kind: str) -> None:
    fake_a.script(UPSTREAM, status=status, error=error(status))
    resp = dep.post("fo-500" if status == 500 else "fo-503")
    row = answered_by_b(dep, resp, kind)
    assert row["failed"][0]["status"] == (502 if status == 500 else 503)
    assert calls(fake_a) == 1 and calls(fake_b) == 1
    # Billed once, for the answer b gave (the fake counts one token per word).
    assert row["cost_nanos"] == text_cost(row["prompt_tokens"], row["output_text"]) > 0


def test_5xx_fails_over_for_streams(dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini) -> None:
    fake_a.script(UPSTREAM, status=503, error=error(503))
    resp = dep.post("fo-stream-500", stream=True)
    answered_by_b(dep, resp, "server")
    events = sse_events(resp)
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "".join(p["text"] for e in events for p in e["candidates"][0]["content"]["parts"]) == "echo: hello there"


def test_connection_refused_fails_over(dep: Deployment, fake_b: FakeGemini) -> None:
    resp = dep.post("fo-dead-first")
    assert resp.status_code == 200
    row = dep.record(resp)
    assert row["channel"] == f"b/{UPSTREAM}" and row["attempts"] == 2
    assert row["failed"][0]["channel"] == f"nowhere/{UPSTREAM}" and row["failed"][0]["error"] == "connect"


def test_connection_reset_before_an_answer_fails_over(dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini) -> None:
    fake_a.script(UPSTREAM, cut_after=0)  # a unary call: aborted before any byte
    resp = dep.post("fo-reset")
    answered_by_b(dep, resp, "connect")
    assert calls(fake_a) == 1  # sent once, never again to the same upstream


def test_silent_stream_fails_over_at_the_first_token_timeout(dep: Deployment, fake_a: FakeGemini) -> None:
    fake_a.script(UPSTREAM, delay=FIRST_TOKEN_TIMEOUT_S + 3)
    started = time.monotonic()
    resp = dep.post("fo-hang", stream=True)
    took = time.monotonic() - started
    row = answered_by_b(dep, resp, "timeout")
    assert took < FIRST_TOKEN_TIMEOUT_S + 3  # b answered before a's delay ran out
    assert row["failed"][0]["ms"] >= FIRST_TOKEN_TIMEOUT_S * 1000 * 0.9
    assert fake_a.wait_disconnects(1), "the abandoned attempt must be cancelled upstream"


def test_silent_unary_call_times_out_once(dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini) -> None:
    """A unary read timeout is not retried: the upstream may be doing (and billing) it."""
    fake_a.script(UPSTREAM, delay=UPSTREAM_TIMEOUT_S + 4)
    started = time.monotonic()
    resp = dep.post("fo-unary-hang")
    took = time.monotonic() - started
    assert resp.status_code == 504, resp.text
    assert resp.json()["error"]["status"] == "DEADLINE_EXCEEDED"
    assert UPSTREAM_TIMEOUT_S * 0.9 < took < UPSTREAM_TIMEOUT_S + 2
    assert calls(fake_a) == 1 and calls(fake_b) == 0
    row = dep.record(resp)
    assert row["status"] == "error" and row["cost_nanos"] == 0


def test_error_as_a_streams_first_event_fails_over(dep: Deployment, fake_a: FakeGemini) -> None:
    fake_a.script(UPSTREAM, stream=[{"error": error(503, "overloaded")}])
    resp = dep.post("fo-error-event", stream=True)
    answered_by_b(dep, resp, "server")
    assert "overloaded" not in resp.text


# --- after the first byte, and the client's own errors: never --------------------------------


def test_cut_stream_is_not_retried_and_bills_what_was_generated(
    dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini
) -> None:
    fake_a.script(UPSTREAM, stream=stream_events(5), cut_after=2)
    resp = dep.post("fo-cut", stream=True)
    assert resp.status_code == 200
    events = sse_events(resp)
    assert "error" in events[-1] and len(events) == 3  # two chunks, then the error event
    assert calls(fake_b) == 0
    row = dep.record(resp)
    assert row["status"] == "interrupted" and row["interrupted"]
    assert row["channel"] == f"a/{UPSTREAM}" and row["attempts"] == 1
    assert row["output_text"] == 10 and row["cost_nanos"] == text_cost(7, 10)


def test_client_errors_never_fail_over(dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini) -> None:
    fake_a.script(UPSTREAM, status=400, error=error(400, "Unable to process input image."))
    resp = dep.post("fo-client")
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "Unable to process input image."
    assert calls(fake_b) == 0
    row = dep.record(resp)
    assert row["status"] == "error" and row["attempts"] == 1 and row["cost_nanos"] == 0


# --- upstream keys -----------------------------------------------------------------------------


def test_refused_key_is_set_aside_and_the_next_key_answers(dep: Deployment, fake_a: FakeGemini) -> None:
    invalid = error(400, f"API key not valid: {KEY_POOL_1}", details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
    ])
    fake_a.script(UPSTREAM, status=400, error=invalid)
    first = dep.post("fo-pool")
    assert first.status_code == 200, first.text
    assert KEY_POOL_1 not in first.text
    used = [r.headers["x-goog-api-key"] for r in fake_a.requests if r.rpc]
    assert len(used) == 2 and used[0] != used[1]
    refused = used[0]
    row = dep.record(first)
    assert row["failed"][0]["error"] == "credential"
    assert row["upstream_key"] in ("KEY_POOL_1", "KEY_POOL_2")
    # The refused key is never sent again.
    fake_a.clear()
    for _ in range(4):
        assert dep.post("fo-pool").status_code == 200
    assert refused not in {r.headers["x-goog-api-key"] for r in fake_a.requests if r.rpc}


def test_rate_limited_key_rests_for_the_upstreams_retry_delay(dep: Deployment, fake_a: FakeGemini) -> None:
    limited = error(429, "Quota exceeded", details=[{"@type": RETRY_INFO, "retryDelay": "30s"}])
    fake_a.script(UPSTREAM, status=429, error=limited)
    first = dep.post("fo-pool-429")
    assert first.status_code == 200
    used = [r.headers["x-goog-api-key"] for r in fake_a.requests if r.rpc]
    rested = used[0]
    assert dep.record(first)["failed"][0]["error"] == "rate_limited"
    fake_a.clear()
    for _ in range(3):
        assert dep.post("fo-pool-429").status_code == 200
    keys = {r.headers["x-goog-api-key"] for r in fake_a.requests if r.rpc}
    assert rested not in keys and len(keys) == 1


def test_when_every_channel_is_rate_limited_the_client_gets_429_with_retry_after(
    dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini
) -> None:
    fake_a.script(UPSTREAM, status=429, error=error(429, details=[{"@type": RETRY_INFO, "retryDelay": "9s"}]))
    fake_b.script(UPSTREAM, status=429, error=error(429, details=[{"@type": RETRY_INFO, "retryDelay": "4s"}]))
    resp = dep.post("fo-all-429")
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "4"
    assert resp.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    row = dep.record(resp)
    assert row["status"] == "error" and row["attempts"] == 2 and row["cost_nanos"] == 0


# --- selection ---------------------------------------------------------------------------------


def test_circuit_opens_then_a_probe_closes_it(dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini) -> None:
    for _ in range(2):
        fake_a.script(UPSTREAM, status=503, error=error(503))
        assert dep.post("fo-breaker").status_code == 200
    assert calls(fake_a) == 2
    # Open: a is skipped, b answers at once.
    resp = dep.post("fo-breaker")
    assert resp.status_code == 200 and calls(fake_a) == 2
    assert dep.record(resp)["attempts"] == 1
    live = httpx.get(f"{dep.gw.base_url}/admin/channels").json()["channels"]
    channels = {c["channel"]: c for c in live if c["model"] == "fo-breaker"}
    assert channels[f"a/{UPSTREAM}"]["circuit"] == "open"
    assert channels[f"a/{UPSTREAM}"]["consecutive_failures"] == 2
    # After the cooldown one probe goes to a; its success closes the circuit.
    time.sleep(COOLDOWN_S + 0.2)
    resp = dep.post("fo-breaker")
    assert resp.status_code == 200 and calls(fake_a) == 3
    assert dep.record(resp)["channel"] == f"a/{UPSTREAM}"
    channels = {c["channel"]: c for c in json.loads(dep.gw.cli("channels", "--json").stdout) if c["model"] == "fo-breaker"}
    assert channels[f"a/{UPSTREAM}"]["circuit"] == "closed"


def test_weights_spread_traffic_within_a_tier(dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini) -> None:
    for _ in range(200):
        assert dep.post("fo-weights").status_code == 200
    share_a = calls(fake_a) / 200
    assert calls(fake_a) + calls(fake_b) == 200
    assert 0.62 < share_a < 0.88  # weight 3 of 4; far outside chance at n=200


def test_sticky_conversations_keep_their_channel(dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini) -> None:
    channels = set()
    for turn in range(6):
        body = hello("a conversation about tides")
        body["contents"].append({"role": "model", "parts": [{"text": f"reply {turn}"}]})
        body["contents"].append({"role": "user", "parts": [{"text": f"question {turn}"}]})
        resp = dep.post("fo-sticky-on", body)
        channels.add(dep.record(resp)["channel"])
    assert len(channels) == 1
    spread = {dep.record(dep.post("fo-sticky-on", hello(f"topic {i}")))["channel"] for i in range(16)}
    assert len(spread) == 2  # other conversations still use both channels


# --- accounting --------------------------------------------------------------------------------


def test_one_record_per_admitted_request_and_nothing_billed_twice(
    dep: Deployment, fake_a: FakeGemini, fake_b: FakeGemini
) -> None:
    since = len(records(dep.db_url))
    fake_a.script(UPSTREAM, status=500, error=error(500))
    fake_a.script(UPSTREAM, stream=[{"error": error(503)}])
    r1 = dep.post("fo-ledger")
    r2 = dep.post("fo-ledger", stream=True)
    r3 = dep.post("fo-ledger")
    assert [r.status_code for r in (r1, r2, r3)] == [200, 200, 200]
    rows = records(dep.db_url)[since:]
    assert sorted(r["request_id"] for r in rows) == sorted(
        r.headers["x-gemgate-request-id"] for r in (r1, r2, r3)
    )
    assert [r["attempts"] for r in rows] == [2, 2, 1]
    assert all(r["cost_nanos"] == text_cost(r["prompt_tokens"], r["output_text"]) for r in rows)


def test_channel_metrics(dep: Deployment) -> None:
    text = httpx.get(f"{dep.gw.base_url}/metrics").text
    assert f'gemgate_upstream_attempts_total{{channel="a/{UPSTREAM}",result="server"}}' in text
    assert f'gemgate_upstream_attempts_total{{channel="b/{UPSTREAM}",result="ok"}}' in text
    assert f'gemgate_channel_circuit_state{{channel="b/{UPSTREAM}"}}' in text
    assert "gemgate_upstream_attempt_duration_seconds_bucket" in text


def test_a_client_leaving_a_unary_call_cancels_it_upstream(dep: Deployment, fake_a: FakeGemini) -> None:
    fake_a.script(UPSTREAM, delay=UPSTREAM_TIMEOUT_S - 0.5)
    since = len(records(dep.db_url))
    with pytest.raises(httpx.TimeoutException):
        dep.post("fo-client", timeout=0.4)
    assert fake_a.wait_disconnects(1, timeout=3), "the upstream call must be cancelled"
    time.sleep(0.3)
    rows = records(dep.db_url)[since:]
    assert len(rows) == 1 and rows[0]["status"] == "interrupted" and rows[0]["http_status"] == 499
    assert calls(fake_a) == 1  # and never retried


# --- streams and upstream answers, end to end --------------------------------------------------


def test_an_upstream_429s_retry_after_reaches_the_client(dep: Deployment, fake_a: FakeGemini) -> None:
    fake_a.script(UPSTREAM, status=429, error=error(429, "slow down"), headers={"Retry-After": "3"})
    resp = dep.post("fo-retry-after")
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "3"
    details = {d["@type"]: d for d in resp.json()["error"].get("details", [])}
    assert details.get(RETRY_INFO, {}).get("retryDelay") in (None, "3s")


def test_a_stream_event_larger_than_the_http_clients_line_limit_is_relayed(
    dep: Deployment, fake_a: FakeGemini
) -> None:
    image = "A" * (3 * 1024 * 1024)  # Gemini streams generated images as one large event
    events = stream_events(2)
    events[0]["candidates"][0]["content"]["parts"] = [{"inlineData": {"mimeType": "image/png", "data": image}}]
    fake_a.script(UPSTREAM, stream=events)
    resp = dep.post("fo-big-event", stream=True)
    got = sse_events(resp)
    assert resp.status_code == 200 and len(got) == 2 and "error" not in got[-1]
    assert got[0]["candidates"][0]["content"]["parts"][0]["inlineData"]["data"] == image
    assert dep.record(resp)["status"] == "ok"


def test_a_stream_that_ends_without_finishing_is_recorded_interrupted(
    dep: Deployment, fake_a: FakeGemini
) -> None:
    events = stream_events(3)
    del events[-1]["candidates"][0]["finishReason"]
    fake_a.script(UPSTREAM, stream=events)
    resp = dep.post("fo-unfinished", stream=True)
    assert resp.status_code == 200 and len(sse_events(resp)) == 3
    row = dep.record(resp)
    assert row["status"] == "interrupted" and row["interrupted"]
    assert row["cost_nanos"] == text_cost(7, 15)  # billed for what was generated

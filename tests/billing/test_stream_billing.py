"""Streams are billed from the last cumulative usage seen, also when they end early: a client
that goes away and an upstream that breaks off both leave one ``interrupted`` record with the
cost of what was generated. A long answer is relayed, never held."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.billing.gateways import (
    MODEL,
    records,
    sqlite_url,
    start,
    stream_events,
    text_cost,
    wait_for,
)
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

PATH = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "tell me a long story"}]}]}


@pytest.fixture(scope="module")
def gw(
    fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("streams"), fake_google)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.create_key("streamer", "--budget-usd", "100")


def one_record(gw: GatewayProcess, request_id: str) -> dict:
    found = wait_for(lambda: records(sqlite_url(gw), request_id=request_id), 10, "the record")
    assert len(found) == 1
    return found[0]


def cost_of(event: dict) -> int:
    usage = event["usageMetadata"]
    return text_cost(usage["promptTokenCount"], usage["candidatesTokenCount"])


def test_client_disconnect_bills_what_was_generated(
    gw: GatewayProcess, key: str, fake_google: FakeGemini
) -> None:
    events = stream_events(10)
    fake_google.script(MODEL, stream=events, method="streamGenerateContent")
    gate = fake_google.hold_stream(MODEL, first_events=3)
    seen: list[dict] = []
    try:
        with (
            httpx.Client(base_url=gw.base_url, timeout=30) as client,
            client.stream("POST", PATH, json=HELLO, headers={"x-goog-api-key": key}) as resp,
        ):
            assert resp.status_code == 200
            request_id = resp.headers["x-gemgate-request-id"]
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if len(seen) == 3:
                    break  # ...and hang up while the upstream is still generating
        assert gate.reached.is_set()
        # The gateway cancelled its upstream call.
        assert fake_google.wait_disconnects(1, timeout=10)
    finally:
        gate.release()
    rec = one_record(gw, request_id)
    assert rec["interrupted"] and rec["status"] == "interrupted" and rec["http_status"] == 499
    assert rec["streamed"] and not rec["estimated"]
    assert seen[-1]["usageMetadata"]["candidatesTokenCount"] == 15
    assert (rec["prompt_tokens"], rec["output_text"]) == (7, 15)
    assert rec["cost_nanos"] == cost_of(seen[-1]) == text_cost(7, 15)


def test_upstream_cut_bills_what_was_generated(
    gw: GatewayProcess, key: str, fake_google: FakeGemini
) -> None:
    fake_google.script(MODEL, stream=stream_events(10), method="streamGenerateContent", cut_after=4)
    with httpx.Client(base_url=gw.base_url, timeout=30) as client:
        resp = client.post(PATH, json=HELLO, headers={"x-goog-api-key": key})
    assert resp.status_code == 200
    data = [json.loads(x[6:]) for x in resp.text.split("\r\n\r\n") if x.startswith("data: ")]
    *relayed, last = data
    assert list(last) == ["error"], last  # the client is told, in the stream
    assert last["error"]["code"] == 502 and last["error"]["status"] == "UNAVAILABLE"
    assert 1 <= len(relayed) <= 4
    rec = one_record(gw, resp.headers["x-gemgate-request-id"])
    assert rec["interrupted"] and rec["status"] == "interrupted" and rec["http_status"] == 502
    assert rec["cost_nanos"] == cost_of(relayed[-1])
    assert rec["output_text"] == relayed[-1]["usageMetadata"]["candidatesTokenCount"]


def test_complete_stream_is_billed_from_last_usage(
    gw: GatewayProcess, key: str, fake_google: FakeGemini
) -> None:
    events = stream_events(6)
    fake_google.script(MODEL, stream=events, method="streamGenerateContent")
    resp = httpx.post(gw.base_url + PATH, json=HELLO, headers={"x-goog-api-key": key}, timeout=30)
    assert resp.status_code == 200
    data = [json.loads(x[6:]) for x in resp.text.split("\r\n\r\n") if x.startswith("data: ")]
    assert data == events
    # Complete answers carry their record before their last event is sent.
    (rec,) = records(sqlite_url(gw), request_id=resp.headers["x-gemgate-request-id"])
    assert rec["status"] == "ok" and not rec["interrupted"]
    assert rec["cost_nanos"] == cost_of(events[-1]) == text_cost(7, 30)


def test_upstream_breaking_after_its_final_event_loses_nothing(
    gw: GatewayProcess, key: str, fake_google: FakeGemini
) -> None:
    """The finishing event carries the final usage, so the record is committed and the
    answer released at once; the upstream dropping the connection after it is harmless."""
    events = stream_events(5)
    fake_google.script(MODEL, stream=events, method="streamGenerateContent", cut_after=5)
    resp = httpx.post(gw.base_url + PATH, json=HELLO, headers={"x-goog-api-key": key}, timeout=30)
    assert resp.status_code == 200
    data = [json.loads(x[6:]) for x in resp.text.split("\r\n\r\n") if x.startswith("data: ")]
    assert data == events  # complete, and no error event after it
    (rec,) = records(sqlite_url(gw), request_id=resp.headers["x-gemgate-request-id"])
    assert rec["status"] == "ok" and not rec["interrupted"]
    assert rec["cost_nanos"] == cost_of(events[-1])


def vm(pid: int, field: str) -> int:
    """A /proc/PID/status memory figure, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_long_answer_is_not_held_in_memory(
    gw: GatewayProcess, key: str, fake_google: FakeGemini
) -> None:
    assert gw.proc is not None
    pid = gw.proc.pid
    text = "lorem ipsum dolor sit amet " * 75  # ~2 kB of answer per event

    def stream(count: int) -> int:
        events = stream_events(count, text=text)
        fake_google.script(MODEL, stream=events, method="streamGenerateContent")
        received = 0
        with (
            httpx.Client(base_url=gw.base_url, timeout=60) as client,
            client.stream("POST", PATH, json=HELLO, headers={"x-goog-api-key": key}) as resp,
        ):
            assert resp.status_code == 200
            for chunk in resp.iter_bytes():
                received += len(chunk)
            rid = resp.headers["x-gemgate-request-id"]
        (rec,) = records(sqlite_url(gw), request_id=rid)
        assert rec["status"] == "ok" and rec["cost_nanos"] == cost_of(events[-1])
        return received

    stream(200)  # warm up: allocator pools, connections
    base = vm(pid, "VmHWM")
    small = stream(2_000)
    after_small = vm(pid, "VmHWM")
    big = stream(20_000)
    after_big = vm(pid, "VmHWM")
    assert big > 40_000_000  # 40 MB went through the gateway...
    # ...but its peak memory grew by far less than the answer: nothing accumulated it.
    grown_small = after_small - base
    grown_big = after_big - after_small
    assert grown_big < 16_000, (base, after_small, after_big, small, big)
    assert grown_big < grown_small + 16_000

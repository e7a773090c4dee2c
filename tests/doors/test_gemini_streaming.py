"""Stream framing on the wire, and proof that events are relayed as they arrive."""

from __future__ import annotations

import httpx
import orjson
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

BODY = orjson.dumps({"contents": [{"parts": [{"text": "alpha beta gamma delta"}]}]})


def test_incremental_delivery(gateway: GatewayProcess, api_key: str, fake_google: FakeGemini) -> None:
    """The client holds the first event while the upstream still withholds the rest."""
    gate = fake_google.hold_stream("gemini-2.5-flash", first_events=1)
    url = f"{gateway.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    try:
        with httpx.stream("POST", url, content=BODY, headers={"x-goog-api-key": api_key}, timeout=10) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.iter_lines()
            first = next(lines)
            assert first.startswith("data: {")
            # The upstream has sent one event and is blocked: the gateway did not wait for it.
            assert gate.reached.is_set() and not gate.released
            event = orjson.loads(first[len("data: "):])
            assert event["candidates"][0]["content"]["parts"][0]["text"] == "echo:"
            gate.release()
            rest = [line for line in lines if line]
    finally:
        gate.release()
    assert len(rest) == 4
    last = orjson.loads(rest[-1][len("data: "):])
    assert last["candidates"][0]["finishReason"] == "STOP"


def test_sse_framing_bytes(gateway: GatewayProcess, api_key: str) -> None:
    url = f"{gateway.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    raw = httpx.post(url, content=BODY, headers={"x-goog-api-key": api_key}, timeout=10).content
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""
    for event in events[:-1]:
        assert event.startswith(b"data: {") and b"\n" not in event
    assert b"[DONE]" not in raw and b"event:" not in raw and not raw.startswith(b":")


def test_json_array_stream(gateway: GatewayProcess, api_key: str) -> None:
    url = f"{gateway.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    resp = httpx.post(url, content=BODY, headers={"x-goog-api-key": api_key}, timeout=10)
    assert resp.status_code == 200
    assert resp.content[:1] == b"["
    items = orjson.loads(resp.content)
    assert len(items) == 5
    assert "".join(i["candidates"][0]["content"]["parts"][0]["text"] for i in items) == "echo: alpha beta gamma delta"


def test_json_array_stream_error_after_start(gateway: GatewayProcess, api_key: str, fake_google: FakeGemini) -> None:
    events = [{"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}}],
               "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}] * 3
    fake_google.script("gemini-2.5-flash", stream=events, cut_after=2)
    url = f"{gateway.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    resp = httpx.post(url, content=BODY, headers={"x-goog-api-key": api_key}, timeout=10)
    items = orjson.loads(resp.content)  # still one valid JSON array
    assert "error" in items[-1] and items[-1]["error"]["code"] == 502
    assert list(items[-1]) == ["error"]


def test_sse_error_event_after_start(gateway: GatewayProcess, api_key: str, fake_google: FakeGemini) -> None:
    events = [{"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}}],
               "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}] * 3
    fake_google.script("gemini-2.5-flash", stream=events, cut_after=2)
    url = f"{gateway.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    raw = httpx.post(url, content=BODY, headers={"x-goog-api-key": api_key}, timeout=10).content
    last = raw.rstrip(b"\r\n").split(b"\r\n\r\n")[-1]
    assert last.startswith(b'data: {"error":')
    assert orjson.loads(last[len(b"data: "):])["error"]["status"] == "UNAVAILABLE"

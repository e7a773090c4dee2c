"""The Anthropic upstream behind the gateway: the anthropic SDK's bytes passed through
unchanged (answers and events too), the Gemini and OpenAI doors translated to and from the
Messages API, upstream faults mapped to the client's protocol, and one exact usage record
per call."""

from __future__ import annotations

import base64
import json
import threading
import time

import anthropic
import httpx
import openai
import pytest
from tests.billing.gateways import wait_for
from tests.doors.anthropic_gateway import (
    ANTHROPIC_KEY,
    SONNET_CACHED,
    SONNET_INPUT,
    SONNET_OUTPUT,
    record,
    records,
)
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.gateway_process import GatewayProcess

SIG = base64.b64encode(b"anthropic-thinking-signature").decode()
ANSWER = [
    {"type": "thinking", "thinking": "Check the weather tool.", "signature": SIG},
    {"type": "text", "text": "Let me look."},
    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
]
TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
USAGE = {"input_tokens": 11, "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}


def sonnet_cost(fresh: int, read: int, written: int, output: int) -> int:
    """Nanos for claude-sonnet-4-6; cache writes are billed at the input rate."""
    return (fresh + written) * SONNET_INPUT + read * SONNET_CACHED + output * SONNET_OUTPUT


# --- passthrough: Anthropic client, Anthropic upstream ---------------------------------------


def test_passthrough_unary(client: anthropic.Anthropic, agw: GatewayProcess, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(content=ANSWER, usage=USAGE)
    raw = client.messages.with_raw_response.create(
        model="claude-test", max_tokens=100, tools=TOOLS,
        messages=[{"role": "user", "content": "weather?"}], extra_body={"unknown_future_field": {"x": 1}},
    )
    assert raw.http_response.content == fake_anthropic.sent[-1]  # the upstream's bytes, untouched
    sent = fake_anthropic.requests[-1]
    assert sent.json["unknown_future_field"] == {"x": 1}  # the client's bytes, untouched
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY and sent.headers["anthropic-version"] == client.default_headers["anthropic-version"]
    msg = raw.parse()
    assert msg.content[0].signature == SIG and msg.stop_reason == "tool_use"  # type: ignore[union-attr]
    rec = record(agw, raw.headers["x-gemgate-request-id"])
    assert rec["door"] == "anthropic" and rec["channel"] == "claude/claude-test" and rec["status"] == "ok"
    assert (rec["prompt_tokens"], rec["cached_tokens"], rec["output_text"]) == (131, 100, 7)


def test_passthrough_renames_the_model(client: anthropic.Anthropic, agw: GatewayProcess,
                                       fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(usage=USAGE)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert fake_anthropic.requests[-1].json["model"] == "claude-test"
    rec = record(agw, raw.headers["x-gemgate-request-id"])
    assert rec["model"] == "claude-sonnet-4-6"
    assert rec["cost_nanos"] == sonnet_cost(11, 100, 20, 7)  # the catalog's Anthropic prices


def test_passthrough_stream(client: anthropic.Anthropic, agw: GatewayProcess, akey: str,
                            fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(content=ANSWER, usage=USAGE)
    body = {"model": "claude-sonnet-4-6", "max_tokens": 100, "stream": True, "tools": TOOLS,
            "messages": [{"role": "user", "content": "weather?"}]}
    resp = httpx.post(f"{agw.base_url}/v1/messages", json=body,
                      headers={"x-api-key": akey, "anthropic-version": "2023-06-01"})
    assert resp.status_code == 200 and resp.content == fake_anthropic.sent[-1]
    rec = record(agw, resp.headers["x-gemgate-request-id"])
    assert rec["streamed"] and not rec["interrupted"] and rec["cost_nanos"] == sonnet_cost(11, 100, 20, 7)
    fake_anthropic.script(content=ANSWER, usage=USAGE)
    with client.messages.stream(model="claude-test", max_tokens=100, tools=TOOLS,
                                messages=[{"role": "user", "content": "weather?"}]) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].signature == SIG and final.content[2].input == {"city": "Paris"}  # type: ignore[union-attr]


def test_anthropic_only_features(client: anthropic.Anthropic, fake_anthropic: FakeAnthropic) -> None:
    """A server tool only Anthropic runs: served by the Anthropic channel (bytes untouched),
    refused with a clear error by a Gemini one."""
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]
    msg = client.messages.create(model="claude-test", max_tokens=20, tools=tools,  # type: ignore[arg-type]
                                 messages=[{"role": "user", "content": "news?"}])
    assert msg.content[0].type == "text" and fake_anthropic.requests[-1].json["tools"] == tools
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="gemini-2.5-flash", max_tokens=20, tools=tools,  # type: ignore[arg-type]
                               messages=[{"role": "user", "content": "news?"}])
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "tools[0].type" in info.value.message and "only by an Anthropic upstream" in info.value.message


def test_media_urls_go_to_anthropic_as_they_are(client: anthropic.Anthropic, fake_anthropic: FakeAnthropic) -> None:
    """The gateway fetches no URL (remote media is off), but an Anthropic upstream takes it."""
    content = [{"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
               {"type": "text", "text": "what is it?"}]
    client.messages.create(model="claude-test", max_tokens=20, messages=[{"role": "user", "content": content}])
    assert fake_anthropic.requests[-1].json["messages"][0]["content"] == content


# --- translated: Gemini and OpenAI clients, Anthropic upstream -------------------------------


def gemini_post(agw: GatewayProcess, akey: str, method: str, body: dict, sse: bool = False) -> httpx.Response:  # type: ignore[type-arg]
    query = "?alt=sse" if sse else ""
    return httpx.post(f"{agw.base_url}/v1beta/models/claude-sonnet-4-6:{method}{query}", json=body,
                      headers={"x-goog-api-key": akey})


GEMINI_BODY = {
    "systemInstruction": {"parts": [{"text": "be brief"}]},
    "contents": [{"role": "user", "parts": [{"text": "weather?"}]}],
    "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": TOOLS[0]["input_schema"]}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
    "generationConfig": {"maxOutputTokens": 300, "stopSequences": ["END"],
                         "thinkingConfig": {"thinkingBudget": 2000, "includeThoughts": True}},
}


def test_gemini_door_to_anthropic(agw: GatewayProcess, akey: str, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(content=ANSWER, usage=USAGE)
    resp = gemini_post(agw, akey, "generateContent", GEMINI_BODY)
    assert resp.status_code == 200, resp.text
    sent = fake_anthropic.requests[-1].json
    assert sent["model"] == "claude-test" and sent["system"] == "be brief" and sent["max_tokens"] == 300
    assert sent["tools"] == [{"name": "get_weather", "input_schema": TOOLS[0]["input_schema"]}]
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert sent["stop_sequences"] == ["END"]
    out = resp.json()
    parts = out["candidates"][0]["content"]["parts"]
    assert parts == [
        {"text": "Check the weather tool.", "thought": True, "thoughtSignature": SIG},
        {"text": "Let me look."},
        {"functionCall": {"id": "toolu_01", "name": "get_weather", "args": {"city": "Paris"}}},
    ]
    assert out["usageMetadata"] == {"promptTokenCount": 131, "candidatesTokenCount": 7,
                                    "totalTokenCount": 138, "cachedContentTokenCount": 100}
    # The next turn brings the signed thinking block and the tool id back to Anthropic.
    fake_anthropic.script()
    turn = {**GEMINI_BODY, "contents": [
        GEMINI_BODY["contents"][0],
        {"role": "model", "parts": parts},
        {"role": "user", "parts": [{"functionResponse": {"id": "toolu_01", "name": "get_weather",
                                                         "response": {"result": "sunny"}}}]},
    ]}
    assert gemini_post(agw, akey, "generateContent", turn).status_code == 200
    messages = fake_anthropic.requests[-1].json["messages"]
    assert messages[1]["content"] == ANSWER
    assert messages[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"}]
    assert record(agw, resp.headers["x-gemgate-request-id"])["door"] == "gemini"


def test_gemini_stream_from_anthropic(agw: GatewayProcess, akey: str, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(content=ANSWER, usage=USAGE)
    resp = gemini_post(agw, akey, "streamGenerateContent", GEMINI_BODY, sse=True)
    chunks = [json.loads(e.removeprefix("data: ")) for e in resp.text.split("\r\n\r\n") if e]
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert "".join(p["text"] for p in parts if "text" in p and not p.get("thought")) == "Let me look."
    assert "".join(p["text"] for p in parts if p.get("thought")) == "Check the weather tool."
    assert [p["thoughtSignature"] for p in parts if "thoughtSignature" in p] == [SIG]
    assert [p["functionCall"] for p in parts if "functionCall" in p] == [
        {"id": "toolu_01", "name": "get_weather", "args": {"city": "Paris"}}]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 7
    rec = record(agw, resp.headers["x-gemgate-request-id"])
    assert rec["cost_nanos"] == sonnet_cost(11, 100, 20, 7) and not rec["estimated"]


def test_openai_door_to_anthropic(agw: GatewayProcess, akey: str, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(content=[{"type": "text", "text": "bonjour"}])
    oa = openai.OpenAI(api_key=akey, base_url=agw.base_url + "/v1", max_retries=0)
    reply = oa.chat.completions.create(model="claude-test", max_tokens=20,
                                       messages=[{"role": "system", "content": "French"}, {"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "bonjour"
    sent = fake_anthropic.requests[-1].json
    assert sent["system"] == "French" and sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


# --- upstream faults -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "status", "kind"),
    [
        ({"status": 529}, 529, "overloaded_error"),
        ({"status": 500}, 502, "api_error"),
        ({"status": 400, "message": "messages.0: bad block"}, 400, "invalid_request_error"),
    ],
)
def test_upstream_errors(client: anthropic.Anthropic, fake_anthropic: FakeAnthropic, script: dict,  # type: ignore[type-arg]
                         status: int, kind: str) -> None:
    fake_anthropic.script(**script)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status
    assert info.value.body["error"]["type"] == kind  # type: ignore[index]
    assert ANTHROPIC_KEY not in info.value.response.text
    if status == 400:
        assert "bad block" in info.value.message


def test_stream_error_event_mid_stream(client: anthropic.Anthropic, agw: GatewayProcess,
                                       fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(content=[{"type": "text", "text": "one two three four"}], error_after=5)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info, client.messages.stream(
        model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        seen.extend(stream.text_stream)
    assert "".join(seen) == "one two"
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_stream_cut(agw: GatewayProcess, akey: str, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(content=[{"type": "text", "text": "one two three four"}], cut_after=5)
    body = {"model": "claude-test", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    resp = httpx.post(f"{agw.base_url}/v1/messages", json=body, headers={"x-api-key": akey})
    events = [e for e in resp.text.split("\n\n") if e]
    assert events[-1].startswith("event: error\n")
    assert json.loads(events[-1].split("data: ", 1)[1])["error"]["type"] == "api_error"
    rec = record(agw, resp.headers["x-gemgate-request-id"])
    assert rec["interrupted"] and rec["status"] == "interrupted" and rec["output_text"] > 0


def test_hang_then_client_gives_up(agw: GatewayProcess, akey: str, fake_anthropic: FakeAnthropic) -> None:
    hang = threading.Event()
    fake_anthropic.script(hang=hang)
    body = {"model": "claude-test", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{agw.base_url}/v1/messages", json=body, headers={"x-api-key": akey}, timeout=1.0)
    gone = wait_for(lambda: records(agw, http_status=499), what="the record of the call the client left")
    assert gone[-1]["door"] == "anthropic" and gone[-1]["interrupted"]
    hang.set()
    fake_anthropic.script()
    ok = httpx.post(f"{agw.base_url}/v1/messages", json=body, headers={"x-api-key": akey})
    assert ok.status_code == 200


def test_upstream_rate_limit(client: anthropic.Anthropic, fake_anthropic: FakeAnthropic) -> None:
    """The upstream's 429 keeps its Retry-After (its key then rests that long: last here)."""
    fake_anthropic.script(status=429, retry_after=1)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert info.value.response.headers["retry-after"] == "1"
    time.sleep(1.2)


def test_upstream_refuses_the_gateway_key(client: anthropic.Anthropic, fake_anthropic: FakeAnthropic) -> None:
    """The gateway's key is refused: the client learns nothing about it (and that key is set
    aside until a restart: last here)."""
    fake_anthropic.script(status=401)
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502 and info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert ANTHROPIC_KEY not in info.value.response.text

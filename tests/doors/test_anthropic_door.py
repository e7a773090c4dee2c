"""The official anthropic SDK, unchanged, against the Anthropic door: a Gemini upstream
(translated, tools and thought signatures), the local model, count_tokens, models and
the error envelope. Every call leaves one exact usage record."""

from __future__ import annotations

import base64
import json

import anthropic
import httpx
import pytest
from tests.doors.anthropic_gateway import record, records
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF").decode()
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
# JSON Schema keywords Gemini's own Schema type refuses: they must reach it untouched.
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "days": {"type": "integer", "exclusiveMinimum": 0},
    },
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [{"name": "get_weather", "description": "Weather for a city", "input_schema": SCHEMA}]
SIG_CALL = base64.b64encode(b"signature-of-the-call").decode()
SIG_THOUGHT = base64.b64encode(b"signature-of-the-thought").decode()


def script_tool_call(fake: FakeGemini, *, stream: bool = False) -> None:
    """Gemini answers with a thought summary and two parallel calls, the first signed."""
    parts = [
        {"text": "I should look up both cities.", "thought": True, "thoughtSignature": SIG_THOUGHT},
        {"functionCall": {"id": "fc_1", "name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": SIG_CALL},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome", "days": 2}}},
    ]
    usage = {"promptTokenCount": 40, "candidatesTokenCount": 12, "thoughtsTokenCount": 7,
             "totalTokenCount": 59}
    if stream:
        events = [
            {"candidates": [{"content": {"role": "model", "parts": [parts[0]]}, "index": 0}],
             "usageMetadata": {"promptTokenCount": 40, "totalTokenCount": 40}},
            {"candidates": [{"content": {"role": "model", "parts": parts[1:]}, "index": 0,
                             "finishReason": "STOP"}], "usageMetadata": usage},
        ]
        fake.script("gemini-2.5-flash", stream=events)
    else:
        fake.script("gemini-2.5-flash", {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage,
        })


def second_turn(fake: FakeGemini, client: anthropic.Anthropic, content: list) -> dict:  # type: ignore[type-arg]
    """Answer both calls; return the contents the upstream received."""
    uses = [b for b in content if b["type"] == "tool_use"]
    messages = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": uses[0]["id"], "content": "sunny, 21C"},
            {"type": "tool_result", "tool_use_id": uses[1]["id"], "content": [{"type": "text", "text": "no data"}],
             "is_error": True},
        ]},
    ]
    reply = client.messages.create(model="gemini-2.5-flash", max_tokens=200, messages=messages, tools=TOOLS,
                                   thinking={"type": "enabled", "budget_tokens": 2048})
    assert reply.content[0].type == "text"
    sent = fake.requests[-1].json
    assert sent is not None
    return sent


def check_second_turn(sent: dict) -> None:  # type: ignore[type-arg]
    model_parts = sent["contents"][1]["parts"]
    assert model_parts[0] == {"text": "I should look up both cities.", "thought": True,
                              "thoughtSignature": SIG_THOUGHT}
    assert model_parts[1]["functionCall"] == {"id": "fc_1", "name": "get_weather", "args": {"city": "Paris"}}
    assert model_parts[1]["thoughtSignature"] == SIG_CALL
    assert "thoughtSignature" not in model_parts[2]
    assert model_parts[2]["functionCall"]["args"] == {"city": "Rome", "days": 2}
    results = [p["functionResponse"] for p in sent["contents"][2]["parts"]]
    assert results[0] == {"id": "fc_1", "name": "get_weather", "response": {"result": "sunny, 21C"}}
    assert results[1]["name"] == "get_weather" and results[1]["response"] == {"error": "no data"}
    assert results[1]["id"] == model_parts[2]["functionCall"]["id"]


# --- Gemini upstream --------------------------------------------------------------------------


def test_plain_message(client: anthropic.Anthropic, agw: GatewayProcess, fake_google: FakeGemini) -> None:
    raw = client.messages.with_raw_response.create(
        model="gemini-2.5-flash", max_tokens=64, system=[{"type": "text", "text": "be brief"}],
        messages=[{"role": "user", "content": "hello there"}], stop_sequences=["zzz"],
        metadata={"user_id": "u1"}, extra_body={"temperature": 0.5, "top_k": 3},
    )
    msg = raw.parse()
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert msg.model == "gemini-2.5-flash"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "echo: hello there"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.output_tokens == 3 and msg.usage.input_tokens > 0
    assert msg.usage.cache_read_input_tokens == 0 and msg.usage.cache_creation_input_tokens == 0
    sent = fake_google.requests[-1].json
    assert sent["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert sent["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.5, "topK": 3, "stopSequences": ["zzz"]}
    rec = record(agw, raw.headers["x-gemgate-request-id"])
    assert rec["door"] == "anthropic" and rec["model"] == "gemini-2.5-flash" and rec["status"] == "ok"
    assert rec["prompt_tokens"] == msg.usage.input_tokens and rec["output_text"] == 3
    assert rec["cost_nanos"] == rec["prompt_tokens"] * 300 + 3 * 2500  # gemini-2.5-flash list prices
    assert raw.headers["x-gemgate-cost-usd"]


def test_tools_thinking_and_signatures(client: anthropic.Anthropic, agw: GatewayProcess,
                                      fake_google: FakeGemini) -> None:
    script_tool_call(fake_google)
    raw = client.messages.with_raw_response.create(
        model="gemini-2.5-flash", max_tokens=500, tools=TOOLS, tool_choice={"type": "any"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "weather in Paris and Rome?"}],
    )
    msg = raw.parse()
    rec = record(agw, raw.headers["x-gemgate-request-id"])
    assert (rec["prompt_tokens"], rec["output_text"], rec["thoughts_tokens"]) == (40, 12, 7)
    assert rec["cost_nanos"] == 40 * 300 + (12 + 7) * 2500
    sent = fake_google.requests[-1].json
    assert sent["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city", "parametersJsonSchema": SCHEMA}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert sent["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 1024}
    assert msg.stop_reason == "tool_use"
    kinds = [b.type for b in msg.content]
    assert kinds == ["thinking", "thinking", "tool_use", "tool_use"]
    assert msg.content[0].signature == SIG_THOUGHT  # type: ignore[union-attr]
    assert msg.content[1].thinking == "" and msg.content[1].signature == SIG_CALL  # type: ignore[union-attr]
    assert msg.content[2].id == "fc_1" and msg.content[2].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert msg.content[3].id.startswith("toolu_")  # type: ignore[union-attr]
    assert msg.usage.output_tokens == 19  # candidates + thoughts
    content = [b.model_dump(exclude_none=True) for b in msg.content]
    check_second_turn(second_turn(fake_google, client, content))


def test_stream_tools_thinking(client: anthropic.Anthropic, fake_google: FakeGemini) -> None:
    script_tool_call(fake_google, stream=True)
    kinds = []
    with client.messages.stream(
        model="gemini-2.5-flash", max_tokens=500, tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "weather in Paris and Rome?"}],
    ) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "thinking" in kinds and "signature" in kinds and "input_json" in kinds
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 19
    assert [b.type for b in final.content] == ["thinking", "thinking", "tool_use", "tool_use"]
    assert final.content[3].input == {"city": "Rome", "days": 2}  # type: ignore[union-attr]
    content = [b.model_dump(exclude_none=True) for b in final.content]
    check_second_turn(second_turn(fake_google, client, content))


def test_stream_text_bytes(agw: GatewayProcess, akey: str) -> None:
    """Anthropic's exact event sequence, with event: lines."""
    body = {"model": "gemini-2.5-flash", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "one two"}]}
    resp = httpx.post(f"{agw.base_url}/v1/messages", json=body,
                      headers={"x-api-key": akey, "anthropic-version": "2023-06-01"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = [e for e in resp.text.split("\n\n") if e]
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert names == ["message_start", "ping", "content_block_start", *["content_block_delta"] * 3,
                     "content_block_stop", "message_delta", "message_stop"]
    data = [json.loads(e.split("\n")[1].removeprefix("data: ")) for e in events]
    assert "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta") == "echo: one two"
    assert data[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert data[-2]["usage"]["output_tokens"] == 3
    rec = record(agw, resp.headers["x-gemgate-request-id"])
    assert rec["door"] == "anthropic" and rec["streamed"] and rec["output_text"] == 3


def test_media_and_agent_fields(client: anthropic.Anthropic, fake_google: FakeGemini) -> None:
    """Images, PDFs, cache_control, a mid-conversation system turn and fields an agent sends
    that do not change the answer are all accepted."""
    client.messages.create(
        model="gemini-2.5-flash", max_tokens=32,
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
                {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            ]},
            {"role": "system", "content": "answer in French"},  # type: ignore[misc,list-item]
        ],
        extra_body={"context_management": {"edits": []}, "service_tier": "auto"},
        extra_headers={"anthropic-beta": "context-management-2025-06-27"},
    )
    sent = fake_google.requests[-1].json
    parts = sent["contents"][0]["parts"]
    assert parts[0]["inlineData"]["mimeType"] == "image/png"
    assert parts[1]["inlineData"] == {"mimeType": "application/pdf", "data": PDF}
    assert sent["systemInstruction"]["parts"][0]["text"] == "sys\n\nanswer in French"


def test_remote_image_refused_by_default(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="gemini-2.5-flash", max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "http://127.0.0.1:1/x.png"}}]}])
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "not fetched" in info.value.message


# --- local model, count_tokens, models ----------------------------------------------------------


def test_local_model(client: anthropic.Anthropic, agw: GatewayProcess) -> None:
    raw = client.messages.with_raw_response.create(
        model="gemma-3-270m", max_tokens=4, extra_body={"temperature": 0}, messages=[{"role": "user", "content": "Say yes."}])
    msg = raw.parse()
    assert msg.content and msg.content[0].type == "text" and msg.usage.output_tokens <= 4
    assert record(agw, raw.headers["x-gemgate-request-id"])["door"] == "anthropic"


def test_count_tokens(client: anthropic.Anthropic, agw: GatewayProcess, fake_google: FakeGemini) -> None:
    before = len(records(agw))
    fake_google.clear()
    counted = client.messages.count_tokens(
        model="gemini-2.5-flash", system="be brief", tools=TOOLS,
        messages=[{"role": "user", "content": "hello there, how many tokens is this?"}])
    small = client.messages.count_tokens(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens > small.input_tokens > 0
    assert fake_google.requests == [] and len(records(agw)) == before  # local, never billed


def test_models(client: anthropic.Anthropic) -> None:
    page = client.models.list(limit=2)
    assert [m.type for m in page.data] == ["model", "model"] and page.has_more
    assert page.first_id == page.data[0].id and page.last_id == page.data[1].id
    ids = [m.id for m in client.models.list()]
    assert {"gemini-2.5-flash", "claude-sonnet-4-6", "gemma-3-270m"} <= set(ids)
    got = client.models.retrieve("claude-sonnet-4-6")
    assert got.display_name == "Claude Sonnet 4.6"
    with pytest.raises(anthropic.NotFoundError) as info:
        client.models.retrieve("nope")
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_models_without_anthropic_version_is_openai(agw: GatewayProcess, akey: str) -> None:
    resp = httpx.get(f"{agw.base_url}/v1/models", headers={"authorization": f"Bearer {akey}"})
    assert resp.json()["object"] == "list"


# --- errors ----------------------------------------------------------------------------------


def test_bad_key(agw: GatewayProcess) -> None:
    bad = anthropic.Anthropic(api_key="gg-wrong", base_url=agw.base_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="gemini-2.5-flash", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    assert info.value.body == {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}


def test_bearer_key(agw: GatewayProcess, akey: str) -> None:
    resp = httpx.post(f"{agw.base_url}/v1/messages", headers={"authorization": f"Bearer {akey}"},
                      json={"model": "gemini-2.5-flash", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 200 and resp.json()["type"] == "message"


def test_unknown_model(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-9", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert info.value.body == {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-9"}}


def test_budget_exhausted(agw: GatewayProcess) -> None:
    key = agw.create_key("poor-anthropic", "--budget-usd", "0.000001")
    poor = anthropic.Anthropic(api_key=key, base_url=agw.base_url)  # default retries: must not retry
    with pytest.raises(anthropic.RateLimitError) as info:
        poor.messages.create(model="gemini-2.5-flash", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "budget" in info.value.message
    assert info.value.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "gemini-2.5-flash", "max_tokens": 8, "messages": "x"}, "messages"),
        ({"model": "gemini-2.5-flash", "max_tokens": 8, "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"model": "gemini-2.5-flash", "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"}]}]}, "messages[0].content[0].tool_use_id"),
        ({"model": "gemini-2.5-flash", "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!"}}]}]},
         "messages[0].content[0].source.data"),
        ({"model": "gemini-2.5-flash", "max_tokens": 8, "thinking": {"type": "enabled"},
          "messages": [{"role": "user", "content": "x"}]}, "thinking.budget_tokens"),
    ],
)
def test_malformed_requests(agw: GatewayProcess, akey: str, body: dict, field: str) -> None:  # type: ignore[type-arg]
    resp = httpx.post(f"{agw.base_url}/v1/messages", json=body, headers={"x-api-key": akey})
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert field in err["error"]["message"]


def test_not_json(agw: GatewayProcess, akey: str) -> None:
    resp = httpx.post(f"{agw.base_url}/v1/messages", content=b"{nope", headers={"x-api-key": akey})
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"


def test_error_mid_stream(client: anthropic.Anthropic, agw: GatewayProcess, fake_google: FakeGemini) -> None:
    events = [{"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": i + 1, "totalTokenCount": 6 + i}}
              for i, w in enumerate(["a ", "b ", "c "])]
    fake_google.script("gemini-2.5-flash", stream=events, cut_after=2)
    seen = []
    with pytest.raises(anthropic.APIStatusError) as info, client.messages.stream(
        model="gemini-2.5-flash", max_tokens=50, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        for text in stream.text_stream:
            seen.append(text)
    assert seen == ["a ", "b "]
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    rec = records(agw, model="gemini-2.5-flash")[-1]
    assert rec["door"] == "anthropic" and rec["interrupted"] and rec["output_text"] == 2

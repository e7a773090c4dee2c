"""The official openai SDK's Responses API, unchanged, against the Responses door: a Gemini
upstream (tools, thought signatures in reasoning items, built-in tools), stored responses
and ``previous_response_id``, streaming as the SDK accumulates it, the local model, and
errors in OpenAI's envelope. Every call leaves one exact usage record."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import openai
import pytest
from tests.doors.anthropic_gateway import record, records
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

SIG_CALL = base64.b64encode(b"signature-of-the-call").decode()
SIG_THOUGHT = base64.b64encode(b"signature-of-the-thought").decode()
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF").decode()
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 1}, "days": {"type": "integer", "exclusiveMinimum": 0}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                     "parameters": SCHEMA, "strict": False}]
USAGE = {"promptTokenCount": 40, "candidatesTokenCount": 12, "thoughtsTokenCount": 7, "totalTokenCount": 59}
PARTS = [
    {"text": "I should look up both cities.", "thought": True, "thoughtSignature": SIG_THOUGHT},
    {"functionCall": {"id": "fc_1", "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG_CALL},
    {"functionCall": {"name": "get_weather", "args": {"city": "Rome", "days": 2}}},
]


@pytest.fixture
def oai(agw: GatewayProcess, akey: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=akey, base_url=agw.base_url + "/v1", max_retries=0)


def script_calls(fake: FakeGemini, *, stream: bool = False) -> None:
    if stream:
        fake.script("gemini-2.5-flash", stream=[
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "I should look up ", "thought": True}]},
                             "index": 0}], "usageMetadata": {"promptTokenCount": 40, "totalTokenCount": 40}},
            {"candidates": [{"content": {"role": "model", "parts": [
                {"text": "both cities.", "thought": True, "thoughtSignature": SIG_THOUGHT}, *PARTS[1:]]},
                "index": 0, "finishReason": "STOP"}], "usageMetadata": USAGE},
        ])
    else:
        fake.script("gemini-2.5-flash", {
            "candidates": [{"content": {"role": "model", "parts": PARTS}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": USAGE,
        })


def test_text_answer_usage_and_record(oai: openai.OpenAI, agw: GatewayProcess, fake_google: FakeGemini) -> None:
    raw = oai.responses.with_raw_response.create(
        model="gemini-2.5-flash", input="hello there", instructions="be brief", max_output_tokens=64,
        temperature=0.5, metadata={"ticket": "t-1"}, store=False,
    )
    resp = raw.parse()
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.status == "completed"
    assert resp.output_text == "echo: hello there" and resp.model == "gemini-2.5-flash"
    assert [item.type for item in resp.output] == ["message"]
    assert resp.metadata == {"ticket": "t-1"} and resp.instructions == "be brief"
    usage = resp.usage
    assert usage is not None and usage.output_tokens == 3 and usage.input_tokens > 0
    assert usage.total_tokens == usage.input_tokens + 3
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0
    sent = fake_google.requests[-1].json
    assert sent["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
    assert sent["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.5}
    rec = record(agw, raw.headers["x-gemgate-request-id"])
    assert rec["door"] == "openai_responses" and rec["model"] == "gemini-2.5-flash" and rec["status"] == "ok"
    assert rec["prompt_tokens"] == usage.input_tokens and rec["output_text"] == 3
    assert rec["cost_nanos"] == rec["prompt_tokens"] * 300 + 3 * 2500  # gemini-2.5-flash list prices
    # store: false keeps nothing
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(resp.id)


def test_tool_calls_replayed_with_their_signatures(
    oai: openai.OpenAI, agw: GatewayProcess, fake_google: FakeGemini
) -> None:
    """Codex's way: store false, the whole input replayed, reasoning items included."""
    script_calls(fake_google)
    first = oai.responses.with_raw_response.create(
        model="gemini-2.5-flash", input="weather in Paris and Rome?", tools=TOOLS, tool_choice="required",
        reasoning={"effort": "low", "summary": "auto"}, include=["reasoning.encrypted_content"], store=False,
    )
    resp = first.parse()
    rec = record(agw, first.headers["x-gemgate-request-id"])
    assert (rec["prompt_tokens"], rec["output_text"], rec["thoughts_tokens"]) == (40, 12, 7)
    assert rec["cost_nanos"] == 40 * 300 + (12 + 7) * 2500
    assert resp.usage is not None and resp.usage.output_tokens == 19
    assert resp.usage.output_tokens_details.reasoning_tokens == 7
    sent = fake_google.requests[-1].json
    assert sent["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city", "parametersJsonSchema": SCHEMA}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    kinds = [item.type for item in resp.output]
    assert kinds == ["reasoning", "reasoning", "function_call", "function_call"]
    thought, sealed, call1, call2 = resp.output
    assert thought.type == "reasoning" and [s.text for s in thought.summary] == ["I should look up both cities."]
    assert thought.encrypted_content and sealed.type == "reasoning" and sealed.encrypted_content
    assert SIG_CALL not in json.dumps(call1.model_dump())  # the signature rides in the reasoning item
    assert call1.type == "function_call" and call1.call_id == "fc_1" and json.loads(call1.arguments) == {"city": "Paris"}
    assert call2.type == "function_call" and call2.call_id.startswith("call_") and call2.name == "get_weather"

    fake_google.script("gemini-2.5-flash", {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Paris is sunny; Rome has no data."}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 80, "candidatesTokenCount": 8, "totalTokenCount": 88}})
    replay: list[Any] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather in Paris and Rome?"}]},
        *[item.model_dump(exclude_none=True) for item in resp.output],
        {"type": "function_call_output", "call_id": call1.call_id, "output": "sunny, 21C"},
        {"type": "function_call_output", "call_id": call2.call_id,
         "output": [{"type": "input_text", "text": "no data"}]},
    ]
    second = oai.responses.create(model="gemini-2.5-flash", input=replay, tools=TOOLS, store=False)
    assert second.output_text == "Paris is sunny; Rome has no data."
    contents = fake_google.requests[-1].json["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {"text": "I should look up both cities.", "thought": True, "thoughtSignature": SIG_THOUGHT},
        {"functionCall": {"id": "fc_1", "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG_CALL},
        {"functionCall": {"id": call2.call_id, "name": "get_weather", "args": {"city": "Rome", "days": 2}}},
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"id": "fc_1", "name": "get_weather", "response": {"output": "sunny, 21C"}}},
        {"functionResponse": {"id": call2.call_id, "name": "get_weather", "response": {"output": "no data"}}},
    ]


def test_previous_response_id_retrieve_input_items_delete(
    oai: openai.OpenAI, agw: GatewayProcess, akey: str, fake_google: FakeGemini
) -> None:
    script_calls(fake_google)
    first = oai.responses.create(model="gemini-2.5-flash", input="weather in Paris and Rome?", tools=TOOLS,
                                 instructions="you are a weather bot", metadata={"run": "7"})
    assert (first.model_extra or {})["store"] is True
    calls = [item for item in first.output if item.type == "function_call"]
    before = len(records(agw))
    second = oai.responses.create(
        model="gemini-2.5-flash", previous_response_id=first.id, tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls],
    )
    assert second.previous_response_id == first.id and second.output_text.startswith("echo:")
    assert len(records(agw)) == before + 1  # loading the history bills nothing
    sent = fake_google.requests[-1].json
    assert "systemInstruction" not in sent  # instructions are not carried over, as OpenAI documents
    contents = sent["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[0]["parts"] == [{"text": "weather in Paris and Rome?"}]
    assert contents[1]["parts"][1]["thoughtSignature"] == SIG_CALL
    assert [p["functionResponse"]["id"] for p in contents[2]["parts"]] == [c.call_id for c in calls]

    got = oai.responses.retrieve(first.id)
    assert got.id == first.id and got.metadata == {"run": "7"}
    assert [i.model_dump() for i in got.output] == [i.model_dump() for i in first.output]
    items = oai.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["function_call_output", "function_call_output"]
    assert [getattr(i, "call_id", None) for i in items.data] == [c.call_id for c in reversed(calls)]  # desc
    asc = oai.responses.input_items.list(first.id, order="asc")
    assert asc.data[0].type == "message" and asc.data[0].role == "user"
    # Another key sees none of it.
    other = openai.OpenAI(api_key=agw.create_key("responses-other"), base_url=agw.base_url + "/v1", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as refused:
        other.responses.create(model="gemini-2.5-flash", previous_response_id=first.id, input="hi")
    assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]
    oai.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(first.id)


def test_stream_events_as_the_sdk_accumulates_them(oai: openai.OpenAI, agw: GatewayProcess,
                                                    fake_google: FakeGemini) -> None:
    script_calls(fake_google, stream=True)
    with oai.responses.stream(model="gemini-2.5-flash", input="weather?", tools=TOOLS,
                              reasoning={"summary": "auto"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert deltas == ["I should look up ", "both cities."]
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 4
    assert [i.type for i in final.output] == ["reasoning", "reasoning", "function_call", "function_call"]
    assert final.usage is not None and final.usage.output_tokens == 19
    rec = records(agw)[-1]
    assert rec["door"] == "openai_responses" and (rec["prompt_tokens"], rec["thoughts_tokens"]) == (40, 7)
    # The stored response is the streamed one, and the text stream reads as the SDK expects.
    stored = oai.responses.retrieve(final.id).output[2].model_dump()
    assert stored == {k: v for k, v in final.output[2].model_dump().items() if k != "parsed_arguments"}
    with oai.responses.stream(model="gemini-2.5-flash", input="stream these words") as text_stream:
        text = "".join(e.delta for e in text_stream if e.type == "response.output_text.delta")
        done = text_stream.get_final_response()
    assert text == done.output_text == "echo: stream these words"


def test_stream_wire_bytes(agw: GatewayProcess, akey: str) -> None:
    with httpx.stream("POST", agw.base_url + "/v1/responses", headers={"Authorization": f"Bearer {akey}"},
                      json={"model": "gemini-2.5-flash", "input": "two words", "stream": True}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        body = resp.read().decode()
    frames = [f for f in body.split("\n\n") if f]
    for frame in frames:
        name, data = frame.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        assert json.loads(data[6:])["type"] == name[7:]
    names = [f.split("\n")[0][7:] for f in frames]
    assert names == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]


def test_built_in_tools_formats_and_warnings(oai: openai.OpenAI, fake_google: FakeGemini) -> None:
    tools: list[Any] = [
        *TOOLS,
        {"type": "web_search"},
        {"type": "namespace", "name": "multi_agent_v1", "description": "sub-agents", "tools": []},
        {"type": "local_shell"},
        {"type": "custom", "name": "apply_patch", "description": "patch", "format": {"type": "text"}},
    ]
    fmt: Any = {"format": {"type": "json_schema", "name": "weather", "schema": SCHEMA, "strict": True},
                "verbosity": "low"}
    resp = oai.responses.create(model="gemini-2.5-flash", input="weather?", tools=tools, max_output_tokens=1,
                                text=fmt,
                                extra_body={"some_new_codex_field": {"x": 1}})
    sent = fake_google.requests[-1].json
    assert [d["name"] for d in sent["tools"][0]["functionDeclarations"]] == ["get_weather", "apply_patch"]
    assert len(sent["tools"]) == 1  # web_search left out next to functions on Gemini 2.x
    assert sent["generationConfig"] == {"maxOutputTokens": 1, "responseMimeType": "application/json",
                                        "responseJsonSchema": SCHEMA}
    warnings = (resp.model_extra or {})["warnings"]
    assert len(warnings) == 3 and any("local_shell" in w for w in warnings)
    assert any("web_search cannot be combined" in w for w in warnings)
    assert any("some_new_codex_field" in w for w in warnings)
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    # Alone, web search is Google Search; without live access it has no equivalent.
    searched = oai.responses.create(model="gemini-2.5-flash", input="news?", tools=[{"type": "web_search"}])
    assert fake_google.requests[-1].json["tools"] == [{"googleSearch": {}}] and "warnings" not in (searched.model_extra or {})
    cached: Any = [{"type": "web_search", "external_web_access": False}]
    oai.responses.create(model="gemini-2.5-flash", input="news?", tools=cached)
    assert "tools" not in fake_google.requests[-1].json


def test_images_and_files(oai: openai.OpenAI, fake_google: FakeGemini) -> None:
    oai.responses.create(model="gemini-2.5-flash", store=False, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_1X1}", "detail": "auto"},
        {"type": "input_file", "filename": "doc.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
    ]}])
    parts = fake_google.requests[-1].json["contents"][0]["parts"]
    assert parts[0] == {"text": "what is this?"}
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert parts[2]["inlineData"]["mimeType"] == "application/pdf"


def test_local_model(oai: openai.OpenAI, agw: GatewayProcess) -> None:
    raw = oai.responses.with_raw_response.create(model="gemma-3-270m", input="The capital of France is",
                                                 max_output_tokens=8)
    resp = raw.parse()
    assert resp.output_text.strip() and resp.usage is not None and resp.usage.output_tokens > 0
    rec = record(agw, raw.headers["x-gemgate-request-id"])
    assert rec["model"] == "gemma-3-270m" and rec["output_text"] == resp.usage.output_tokens
    again = oai.responses.create(model="gemma-3-270m", previous_response_id=resp.id, input="And of Spain?",
                                 max_output_tokens=4)
    assert again.previous_response_id == resp.id and again.status in ("completed", "incomplete")


def test_errors_in_openai_envelope(oai: openai.OpenAI, agw: GatewayProcess, akey: str,
                                   fake_google: FakeGemini) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        oai.responses.create(model="no-such-model", input="hi")
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        oai.responses.create(model="gemini-2.5-flash", input=[{"type": "function_call_output", "call_id": "nope",
                                                                "output": "x"}])
    assert "input[0].call_id" in bad.value.message
    with pytest.raises(openai.BadRequestError) as background:
        oai.responses.create(model="gemini-2.5-flash", input="hi", background=True)
    assert background.value.body["param"] == "background"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="bad", base_url=agw.base_url + "/v1", max_retries=0).responses.create(
            model="gemini-2.5-flash", input="hi")
    fake_google.script("gemini-2.5-flash", status=503)
    with pytest.raises(openai.InternalServerError):
        oai.responses.create(model="gemini-2.5-flash", input="hi", stream=True)


def test_error_mid_stream(oai: openai.OpenAI, agw: GatewayProcess, fake_google: FakeGemini) -> None:
    fake_google.script("gemini-2.5-flash", stream=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "half"}]}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": " more"}]}, "index": 0}]},
    ], cut_after=1)
    before = len(records(agw))
    events = list(oai.responses.create(model="gemini-2.5-flash", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    made = records(agw)[before:]
    assert len(made) == 1 and made[0]["status"] == "interrupted" and made[0]["output_text"] == 1

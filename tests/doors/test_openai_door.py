"""The official openai SDK against the OpenAI door: Gemini upstream, local model, OpenAI
upstream (passthrough), and the google-genai SDK against an OpenAI-compatible upstream."""

from __future__ import annotations

import base64
import json
import sqlite3

import httpx
import openai
import pytest
from google import genai
from google.genai import types
from tests.conftest import OPENAI_KEY
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import GatewayProcess

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def oa(gateway: GatewayProcess, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=gateway.base_url + "/v1", max_retries=0)


def record(gateway: GatewayProcess, request_id: str) -> dict:
    with sqlite3.connect(gateway.workdir / "gemgate.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM usage_records WHERE request_id = ?", (request_id,)).fetchone()
    assert row is not None, f"no record for {request_id}"
    return dict(row)


# --- OpenAI door -> Gemini upstream --------------------------------------------------------


def test_chat_plain(oa: openai.OpenAI, gateway: GatewayProcess, fake_google: FakeGemini) -> None:
    raw = oa.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
        max_tokens=50, temperature=0.2, stop=["zzz"], seed=3,
    )
    resp = raw.parse()
    assert resp.choices[0].message.content == "echo: hi there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens == 3
    sent = fake_google.requests[-1].json
    assert sent is not None
    assert sent["systemInstruction"]["parts"][0]["text"] == "be brief"
    assert sent["generationConfig"]["maxOutputTokens"] == 50 and sent["generationConfig"]["stopSequences"] == ["zzz"]
    rec = record(gateway, raw.headers["x-gemgate-request-id"])
    assert rec["door"] == "openai" and rec["model"] == "google/gemini-2.5-flash" and rec["status"] == "ok"


def test_chat_stream_with_usage(oa: openai.OpenAI) -> None:
    stream = oa.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "one two three"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_stream_bytes_end_with_done(gateway: GatewayProcess, api_key: str) -> None:
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "a b"}], "stream": True}
    raw = httpx.post(f"{gateway.base_url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {api_key}"}).content
    assert raw.endswith(b"data: [DONE]\n\n")
    assert all(e.startswith(b"data: ") for e in raw.split(b"\n\n") if e)


def test_tools_round_trip(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    fake_google.script("gemini-2.5-flash", {
        "candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"id": "call_2", "name": "get_time", "args": {"tz": "CET"}}},
        ]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 8, "totalTokenCount": 20},
    })
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
    ]
    messages: list = [{"role": "user", "content": "weather and time in Paris?"}]
    first = oa.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=tools, tool_choice="required")
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert calls is not None and [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    sent = fake_google.requests[-1].json
    assert sent is not None and sent["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": json.dumps({"temp": 21})})
    messages.append({"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"})
    second = oa.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=tools)
    assert second.choices[0].message.content
    contents = fake_google.requests[-1].json["contents"]  # type: ignore[index]
    responses = [p["functionResponse"] for c in contents for p in c["parts"] if "functionResponse" in p]
    assert responses[0]["name"] == "get_weather" and responses[0]["response"] == {"temp": 21}
    assert responses[1]["name"] == "get_time" and responses[1]["response"] == {"result": "12:00"}


def test_image_input_and_json_schema(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    data_uri = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    oa.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what colour?"}, {"type": "image_url", "image_url": {"url": data_uri}},
        ]}],
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    sent = fake_google.requests[-1].json
    assert sent is not None
    assert sent["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "image/png"
    assert sent["generationConfig"]["responseMimeType"] == "application/json"
    assert sent["generationConfig"]["responseJsonSchema"] == schema


def test_remote_image_url_refused_by_default(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/x.png"}}]}])
    assert "not fetched" in info.value.message


def test_models(oa: openai.OpenAI) -> None:
    ids = [m.id for m in oa.models.list()]
    assert "google/gemini-2.5-flash" in ids and "gemma-3-270m" in ids
    assert oa.models.retrieve("google/gemini-2.5-flash").id == "google/gemini-2.5-flash"
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("nope")


def test_embeddings(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    resp = oa.embeddings.create(model="gemini-embedding-001", input=["alpha", "beta gamma"])  # SDK asks for base64
    assert [d.index for d in resp.data] == [0, 1]
    assert len(resp.data[0].embedding) == 8 and all(isinstance(v, float) for v in resp.data[0].embedding)
    assert resp.usage.prompt_tokens > 0
    floats = oa.embeddings.create(model="gemini-embedding-001", input="alpha", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(resp.data[0].embedding, rel=1e-6)


def test_images_generate_and_edit(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    gen = oa.images.generate(model="gemini-2.5-flash-image", prompt="a red square", size="1792x1024")
    assert gen.data and base64.b64decode(gen.data[0].b64_json or "").startswith(b"\x89PNG")
    sent = fake_google.requests[-1].json
    assert sent is not None
    assert sent["generationConfig"]["responseModalities"] == ["IMAGE"]
    assert sent["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    edit = oa.images.edit(model="gemini-2.5-flash-image", image=("in.png", PNG_1X1, "image/png"), prompt="make it blue")
    assert edit.data and edit.data[0].b64_json
    parts = fake_google.requests[-1].json["contents"][0]["parts"]  # type: ignore[index]
    assert parts[0] == {"text": "make it blue"} and parts[1]["inlineData"]["mimeType"] == "image/png"
    with pytest.raises(openai.BadRequestError) as info:
        oa.images.generate(model="gemini-2.5-flash-image", prompt="x", size="1024x2048")
    assert "1:2" in info.value.message


def test_local_model_chat(oa: openai.OpenAI) -> None:
    resp = oa.chat.completions.create(
        model="gemma-3-270m", messages=[{"role": "user", "content": "Say yes."}], max_tokens=4, temperature=0
    )
    assert resp.choices[0].message.content
    assert resp.usage is not None and resp.usage.completion_tokens <= 4


# --- error envelopes ---------------------------------------------------------------------------


def test_error_bad_key(gateway: GatewayProcess) -> None:
    bad = openai.OpenAI(api_key="gg-wrong", base_url=gateway.base_url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "invalid_api_key"


def test_error_budget(gateway: GatewayProcess, new_key) -> None:  # type: ignore[no-untyped-def]
    poor = openai.OpenAI(api_key=new_key("--budget-usd", "0.000001"), base_url=gateway.base_url + "/v1", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        poor.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "insufficient_quota"
    assert "budget" in info.value.message


def test_error_unknown_model(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oa.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"


def test_error_malformed_body(gateway: GatewayProcess, api_key: str) -> None:
    h = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    resp = httpx.post(f"{gateway.base_url}/v1/chat/completions", content=b"{nope", headers=h)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and set(err) == {"message", "type", "param", "code"}
    resp = httpx.post(f"{gateway.base_url}/v1/chat/completions", json={"model": "gemini-2.5-flash", "messages": []}, headers=h)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "messages"
    resp = httpx.post(f"{gateway.base_url}/v1/chat/completions", json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}}, headers=h)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "logit_bias"


def test_tools_to_local_model_rejected(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(
            model="gemma-3-270m", messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        )
    assert "tools" in (info.value.param or info.value.message)


# --- OpenAI door -> OpenAI upstream (passthrough) ------------------------------------------------


def test_passthrough_keeps_unknown_fields_and_bills(gateway: GatewayProcess, api_key: str, fake_openai: FakeOpenAI) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello upstream"}], "x_vendor_flag": {"a": 1}}
    raw = json.dumps(body, separators=(",", ":")).encode()
    resp = httpx.post(f"{gateway.base_url}/v1/chat/completions", content=raw, headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "echo: hello upstream"
    sent = fake_openai.requests[-1]
    assert sent.raw == raw  # the original bytes, unknown field included
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    usage = resp.json()["usage"]
    rec = record(gateway, resp.headers["x-gemgate-request-id"])
    assert rec["prompt_tokens"] == usage["prompt_tokens"] and rec["output_text"] == usage["completion_tokens"]
    expected = usage["prompt_tokens"] * 150 + usage["completion_tokens"] * 600  # nanos at 0.15 / 0.60 per 1M
    assert rec["cost_nanos"] == expected
    assert resp.headers["x-gemgate-cost-usd"] == f"{expected / 1e9:.9f}"


def test_passthrough_renamed_model_and_stream(gateway: GatewayProcess, oa: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    chunks = list(oa.chat.completions.create(
        model="oai/mini", messages=[{"role": "user", "content": "x y"}], stream=True, stream_options={"include_usage": True}
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: x y"
    assert fake_openai.requests[-1].json["model"] == "gpt-4o-mini"  # type: ignore[index]
    assert chunks[-1].usage is not None


# --- Gemini door -> OpenAI upstream ----------------------------------------------------------


@pytest.fixture
def genai_client(gateway: GatewayProcess, api_key: str) -> genai.Client:
    return genai.Client(api_key=api_key, http_options={"api_version": "v1beta", "base_url": gateway.base_url})


def test_genai_to_openai_upstream(genai_client: genai.Client, fake_openai: FakeOpenAI) -> None:
    resp = genai_client.models.generate_content(model="gpt-4o-mini", contents="bonjour le monde")
    assert resp.text == "echo: bonjour le monde"
    assert resp.usage_metadata is not None and resp.usage_metadata.prompt_token_count
    sent = fake_openai.requests[-1].json
    assert sent is not None and sent["messages"] == [{"role": "user", "content": "bonjour le monde"}]
    chunks = list(genai_client.models.generate_content_stream(model="gpt-4o-mini", contents="un deux trois"))
    assert "".join(c.text or "" for c in chunks) == "echo: un deux trois"
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.candidates_token_count


def test_genai_function_calling_via_openai_upstream(genai_client: genai.Client, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(reply={"tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "gemgate"}'}},
    ]})
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="lookup", parameters_json_schema={"type": "object", "properties": {"q": {"type": "string"}}})])
    config = types.GenerateContentConfig(tools=[tool])
    first = genai_client.models.generate_content(model="gpt-4o-mini", contents="look it up", config=config)
    assert first.function_calls and first.function_calls[0].name == "lookup"
    assert first.function_calls[0].args == {"q": "gemgate"}
    call = first.candidates[0].content  # type: ignore[index]
    reply = types.Content(role="user", parts=[types.Part.from_function_response(name="lookup", response={"hits": 3})])
    second = genai_client.models.generate_content(
        model="gpt-4o-mini", contents=[types.Content(role="user", parts=[types.Part(text="look it up")]), call, reply], config=config
    )
    assert second.text
    messages = fake_openai.requests[-1].json["messages"]  # type: ignore[index]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "lookup"
    assert messages[2]["role"] == "tool" and json.loads(messages[2]["content"]) == {"hits": 3}

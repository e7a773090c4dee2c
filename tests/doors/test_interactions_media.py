"""The Interactions API door beyond text, with the real google-genai SDK against the real
gateway: image input, function tools (a ``function_call`` step, then a ``function_result``
input), thinking (thought summaries, signatures) on a translated channel (a fake OpenAI
upstream) and on the Google passthrough, and files uploaded through the gateway's Files API
named by ``uri`` (bound per channel: the upstream's own copy on Google, the bytes inline
elsewhere; refused for another key and for a model that cannot read them)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types
from google.genai._interactions import BadRequestError, PermissionDeniedError
from tests.conftest import OPENAI_KEY, OPENAI_KEY_VAR, UPSTREAM_KEY
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

CONFIG = """
[server]
host = "127.0.0.1"
port = {PORT}

[database]
url = "sqlite:///{DIR}/gemgate.db"

[files]
dir = "{DIR}/files"

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "%(google)s"
api_key = "env:%(google_var)s"

[[providers]]
name = "oai"
type = "openai"
base_url = "%(openai)s"
api_key = "env:%(openai_var)s"

[[providers]]
name = "local"
type = "local"

[[models]]
id = "gemini-2.5-flash"
provider = "google"

[[models]]
id = "gpt-4o-mini"
provider = "oai"
[models.price]
input = "0.15"
output = "0.60"

[[models]]
id = "gemma-3-270m"
provider = "local"
"""

WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
SIGNATURE = base64.b64encode(b"opaque-thought-signature-0123456789").decode()


def png() -> bytes:
    """A real 1x1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def mgw(fake_google: FakeGemini, fake_openai: FakeOpenAI,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    text = CONFIG % {"google": fake_google.base_url, "google_var": UPSTREAM_KEY_VAR,
                     "openai": fake_openai.base_url, "openai_var": OPENAI_KEY_VAR}
    proc = GatewayProcess(tmp_path_factory.mktemp("interactions-media"), text,
                          env={UPSTREAM_KEY_VAR: UPSTREAM_KEY, OPENAI_KEY_VAR: OPENAI_KEY})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def mkey(mgw: GatewayProcess) -> str:
    return mgw.create_key("interactions-media")


def sdk(gw: GatewayProcess, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=gw.base_url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)))


@pytest.fixture
def client(mgw: GatewayProcess, mkey: str) -> genai.Client:
    return sdk(mgw, mkey)


def chat_requests(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path == "/v1/chat/completions"]


def upload(client: genai.Client, tmp_path: Path) -> Any:
    path = tmp_path / "dot.png"
    path.write_bytes(png())
    return client.files.upload(file=path, config={"mime_type": "image/png"})


# --- a translated channel (the fake OpenAI upstream) ------------------------------------------


def test_image_input_translated(client: genai.Client, fake_openai: FakeOpenAI) -> None:
    data = base64.b64encode(png()).decode()
    out = client.interactions.create(model="gpt-4o-mini", input=[
        {"type": "text", "text": "what is this"}, {"type": "image", "data": data, "mime_type": "image/png"}])
    assert out.status == "completed" and out.output_text == "echo: what is this"
    content = chat_requests(fake_openai)[-1]["messages"][-1]["content"]
    assert {"type": "text", "text": "what is this"} in content
    images = [c for c in content if c.get("type") == "image_url"]
    assert images and images[0]["image_url"]["url"] == f"data:image/png;base64,{data}"


def test_function_call_and_result_translated(client: genai.Client, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(reply={"content": None, "tool_calls": [
        {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]})
    first = client.interactions.create(model="gpt-4o-mini", input="weather in Paris?", tools=[WEATHER])
    sent = chat_requests(fake_openai)[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["parameters"]
    assert first.status == "requires_action"
    calls = [s for s in first.steps if s.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].arguments == {"city": "Paris"}
    call_id = calls[0].id
    assert call_id

    second = client.interactions.create(
        model="gpt-4o-mini", previous_interaction_id=first.id, tools=[WEATHER],
        input=[{"type": "function_result", "call_id": call_id, "name": "get_weather", "result": {"temp": "21C"}}])
    messages = chat_requests(fake_openai)[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]
    assert "21C" in json.dumps(messages[2]["content"])
    assert second.status == "completed" and second.output_text


def test_thinking_translated(client: genai.Client, fake_openai: FakeOpenAI) -> None:
    spec = {"content": "Paris.", "reasoning_content": "The user asks for a capital."}
    fake_openai.script(reply=spec)
    out = client.interactions.create(model="gpt-4o-mini", input="capital of France?",
                                     generation_config={"thinking_summaries": "auto"})
    assert [s.type for s in out.steps] == ["thought", "model_output"]
    assert out.steps[0].summary[0].text == "The user asks for a capital."
    assert out.output_text == "Paris."
    # streamed: a thought step with its summary deltas, then the answer
    fake_openai.script(reply=spec)
    events = list(client.interactions.create(model="gpt-4o-mini", input="capital of France?", stream=True,
                                             generation_config={"thinking_summaries": "auto"}))
    starts = [e.step.type for e in events if e.event_type == "step.start"]
    assert starts == ["thought", "model_output"]
    summary = "".join(e.delta.content.text for e in events
                      if e.event_type == "step.delta" and e.delta.type == "thought_summary")
    assert summary == "The user asks for a capital."
    # a thought signed by another model comes back in the input: accepted, never sent to a
    # channel that cannot read it
    after = client.interactions.create(model="gpt-4o-mini", input=[
        {"type": "user_input", "content": [{"type": "text", "text": "hi"}]},
        {"type": "thought", "signature": SIGNATURE, "summary": [{"type": "text", "text": "thinking"}]},
        {"type": "model_output", "content": [{"type": "text", "text": "hello"}]},
        {"type": "user_input", "content": [{"type": "text", "text": "again"}]}])
    assert after.output_text == "echo: again"
    assert SIGNATURE not in json.dumps(chat_requests(fake_openai)[-1])


# --- the Google passthrough -------------------------------------------------------------------


def test_google_passthrough_image_tools_and_signatures(client: genai.Client, fake_google: FakeGemini) -> None:
    data = base64.b64encode(png()).decode()
    thought = {"type": "thought", "signature": SIGNATURE, "summary": [{"type": "text", "text": "Need weather."}]}
    call = {"type": "function_call", "id": "fc_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    fake_google.script_interaction(steps=[thought, call], status_as="requires_action")
    given = [{"type": "text", "text": "weather here?"}, {"type": "image", "data": data, "mime_type": "image/png"}]
    first = client.interactions.create(model="gemini-2.5-flash", input=given, tools=[WEATHER],
                                       generation_config={"thinking_summaries": "auto"})
    sent = fake_google.requests[-1]
    assert sent.path == "/v1beta/interactions"
    assert sent.json["input"] in (given, [{"type": "user_input", "content": given}])  # as the SDK sent it
    assert sent.json["tools"] == [WEATHER]
    assert first.status == "requires_action"
    assert [s.type for s in first.steps] == ["thought", "function_call"]
    assert first.steps[0].signature == SIGNATURE and first.steps[0].summary[0].text == "Need weather."
    assert first.steps[1].name == "get_weather" and first.steps[1].arguments == {"city": "Paris"}

    result = {"type": "function_result", "call_id": "fc_1", "name": "get_weather", "result": {"temp": "21C"}}
    second = client.interactions.create(model="gemini-2.5-flash", previous_interaction_id=first.id,
                                        input=[result], tools=[WEATHER])
    conversation = fake_google.requests[-1].json["input"]
    # the whole conversation, the signature and the call exactly as the upstream made them
    assert conversation == [{"type": "user_input", "content": given}, thought, call, result]
    assert second.status == "completed"


# --- files uploaded through the gateway ---------------------------------------------------------


def test_gateway_file_on_a_google_channel(client: genai.Client, fake_google: FakeGemini, tmp_path: Path) -> None:
    f = upload(client, tmp_path)
    out = client.interactions.create(model="gemini-2.5-flash", input=[
        {"type": "text", "text": "describe"}, {"type": "image", "uri": f.uri, "mime_type": "image/png"}])
    assert out.status == "completed" and out.output_text
    calls = [r for r in fake_google.requests if r.rpc == "generateContent"]
    assert calls, "bound requests are translated: the client's bytes name the gateway's file"
    parts = calls[-1].json["contents"][-1]["parts"]
    uris = [p["fileData"]["fileUri"] for p in parts if "fileData" in p]
    assert len(uris) == 1 and uris[0] != f.uri and f.name.split("/")[-1] not in uris[0]
    assert not any(r.path.endswith("/interactions") and f.uri in json.dumps(r.json) for r in fake_google.requests)
    # the stored conversation keeps the gateway's uri: a follow-up binds it again
    client.interactions.create(model="gemini-2.5-flash", input="and now?", previous_interaction_id=out.id)
    again = [r for r in fake_google.requests if r.rpc == "generateContent"][-1].json["contents"][0]["parts"]
    assert [p["fileData"]["fileUri"] for p in again if "fileData" in p] == uris


def test_gateway_file_inline_on_a_translated_channel(client: genai.Client, fake_openai: FakeOpenAI,
                                                     tmp_path: Path) -> None:
    f = upload(client, tmp_path)
    out = client.interactions.create(model="gpt-4o-mini", input=[
        {"type": "text", "text": "describe"}, {"type": "image", "uri": f.uri}])
    assert out.output_text == "echo: describe"
    content = chat_requests(fake_openai)[-1]["messages"][-1]["content"]
    images = [c["image_url"]["url"] for c in content if c.get("type") == "image_url"]
    assert images == ["data:image/png;base64," + base64.b64encode(png()).decode()]


def test_gateway_file_refused(client: genai.Client, mgw: GatewayProcess, tmp_path: Path) -> None:
    f = upload(client, tmp_path)
    with pytest.raises(BadRequestError) as err:
        client.interactions.create(model="gemma-3-270m", input=[
            {"type": "text", "text": "describe"}, {"type": "image", "uri": f.uri}])
    body = err.value.body["error"]
    assert body["code"] == "invalid_argument" and "input[0].content[1]" in body["message"]
    assert "image/png" in body["message"]
    other = sdk(mgw, mgw.create_key("interactions-media-other"))
    with pytest.raises(PermissionDeniedError) as denied:
        other.interactions.create(model="gpt-4o-mini", input=[{"type": "image", "uri": f.uri}])
    assert denied.value.body["error"]["code"] == "permission_denied"


def test_gateway_file_with_google_only_fields(client: genai.Client, tmp_path: Path) -> None:
    """Google-only fields are forwarded as the client's bytes, which cannot name the
    gateway's files: refused with a clear error rather than sent upstream broken."""
    f = upload(client, tmp_path)
    with pytest.raises(BadRequestError) as err:
        client.interactions.create(model="gemini-2.5-flash", tools=[{"type": "google_search"}], input=[
            {"type": "text", "text": "describe"}, {"type": "image", "uri": f.uri}])
    body = err.value.body["error"]
    assert body["code"] == "invalid_argument" and "files uploaded to this gateway" in body["message"]

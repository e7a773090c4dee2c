"""Gemini 3 tool calls through the OpenAI door with the real openai SDK: the fake Google
refuses a step whose functionCall lost its thought signature (as Google does), and the
signature survives a client that keeps only the fields it knows (tool-call id, type,
function), unary and streamed; Google's ``extra_content`` still works where it is kept."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from tests.conftest import UPSTREAM_KEY
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

MODEL = "gemini-3-flash-preview"
# Real signatures run to kilobytes.
SIGNATURE = base64.b64encode(os.urandom(3000)).decode()
CONFIG = """
[server]
host = "127.0.0.1"
port = {PORT}

[database]
url = "sqlite:///{DIR}/gemgate.db"

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "%(google)s"
api_key = "env:%(key_var)s"

[[models]]
id = "gemini-3-flash-preview"
provider = "google"
"""
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
]


@pytest.fixture(scope="module")
def g3(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("openai-signatures"),
        CONFIG % {"google": fake_google.base_url, "key_var": UPSTREAM_KEY_VAR},
        env={UPSTREAM_KEY_VAR: UPSTREAM_KEY},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def oa(g3: GatewayProcess, fake_google: FakeGemini) -> openai.OpenAI:
    fake_google.add_model(MODEL, thinking=True)
    key = g3.create_key(f"sig-{os.urandom(4).hex()}")
    return openai.OpenAI(api_key=key, base_url=g3.base_url + "/v1", max_retries=0)


def script_tool_step(fake: FakeGemini, *, stream: bool) -> None:
    """Step one: Gemini 3 thinks and calls two tools in parallel (only the first is signed, as
    Google does); step two: it answers."""
    parts = [
        {"text": "The user wants weather.", "thought": True},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ]
    usage = {"promptTokenCount": 20, "candidatesTokenCount": 10, "thoughtsTokenCount": 5, "totalTokenCount": 35}
    if stream:
        fake.script(MODEL, stream=[
            {"candidates": [{"content": {"role": "model", "parts": parts[:1]}, "index": 0}], "usageMetadata": usage},
            {"candidates": [{"content": {"role": "model", "parts": parts[1:]}, "finishReason": "STOP", "index": 0}],
             "usageMetadata": usage},
        ])
    else:
        fake.script(MODEL, {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                                            "index": 0}], "usageMetadata": usage})


def stripped(calls: list[Any]) -> list[dict[str, Any]]:
    """Tool calls as a client that keeps only OpenAI's own fields sends them back."""
    return [{"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in calls]


def second_step(calls: list[dict[str, Any]]) -> list[Any]:
    return [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": json.dumps({"temp": 21})},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": json.dumps({"temp": 25})},
    ]


def sent_model_turn(fake: FakeGemini) -> tuple[list[Any], list[Any]]:
    """(model parts, function responses) of the last request Google got."""
    contents = fake.requests[-1].json["contents"]  # type: ignore[index]
    model = [p for c in contents if c.get("role") == "model" for p in c["parts"]]
    responses = [p["functionResponse"] for c in contents for p in c["parts"] if "functionResponse" in p]
    return model, responses


def check_second_step(fake: FakeGemini, first_ids: list[str]) -> None:
    model, responses = sent_model_turn(fake)
    calls = [p for p in model if "functionCall" in p]
    assert calls[0]["thoughtSignature"] == SIGNATURE  # restored, byte for byte
    assert "thoughtSignature" not in calls[1]
    assert [c["functionCall"]["args"] for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    # Google sees the calls' own ids, the same in the call and its response
    own = [c["functionCall"]["id"] for c in calls]
    assert [r["id"] for r in responses] == own and all(len(i) < 64 for i in own)
    assert own[1] == first_ids[1]  # an unsigned call keeps the id the client saw
    assert [r["response"] for r in responses] == [{"temp": 21}, {"temp": 25}]


def test_fake_refuses_a_call_without_its_signature(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    """The control: without the signature Google (and the fake) refuse the step."""
    calls = [{"id": f"call_{k}", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
             for k in range(2)]
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(model=MODEL, messages=second_step(calls), tools=TOOLS)
    assert "thought_signature" in str(err.value)


def test_signature_survives_a_client_that_drops_unknown_fields(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    script_tool_step(fake_google, stream=False)
    first = oa.chat.completions.create(model=MODEL, messages=second_step_prompt(), tools=TOOLS)
    calls = first.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 2 and first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.reasoning_content == "The user wants weather."  # type: ignore[attr-defined]
    # Google's extension is there too, for clients that keep it
    assert first.choices[0].message.model_dump()["tool_calls"][0]["extra_content"] == {
        "google": {"thought_signature": SIGNATURE}}
    second = oa.chat.completions.create(model=MODEL, messages=second_step(stripped(calls)), tools=TOOLS)
    assert second.choices[0].message.content
    check_second_step(fake_google, [c.id for c in calls])


def second_step_prompt() -> list[Any]:
    return [{"role": "user", "content": "weather in Paris and Rome?"}]


def test_signature_survives_streamed(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    script_tool_step(fake_google, stream=True)
    with oa.chat.completions.stream(model=MODEL, messages=second_step_prompt(), tools=TOOLS) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None and [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    for step_stream in (False, True):
        messages = second_step(stripped(calls))
        if step_stream:
            chunks = list(oa.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, stream=True))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            oa.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        check_second_step(fake_google, [c.id for c in calls])


def test_extra_content_still_accepted(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    """A client keeping Google's ``extra_content`` (with ids of its own) is served too."""
    script_tool_step(fake_google, stream=False)
    first = oa.chat.completions.create(model=MODEL, messages=second_step_prompt(), tools=TOOLS)
    dumped = first.choices[0].message.model_dump(exclude_none=True)["tool_calls"]
    for k, call in enumerate(dumped):
        call["id"] = f"call_mine_{k}"  # e.g. a client that renumbers calls
    oa.chat.completions.create(model=MODEL, messages=second_step(dumped), tools=TOOLS)
    model, responses = sent_model_turn(fake_google)
    assert [p["functionCall"]["id"] for p in model if "functionCall" in p] == ["call_mine_0", "call_mine_1"]
    signed = next(p for p in model if "functionCall" in p)
    assert signed["thoughtSignature"] == SIGNATURE and [r["id"] for r in responses] == ["call_mine_0", "call_mine_1"]


def test_signed_ids_on_the_wire(g3: GatewayProcess, oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    """The ids a client gets use only [A-Za-z0-9_-] and are unique."""
    script_tool_step(fake_google, stream=False)
    body = {"model": MODEL, "messages": second_step_prompt(), "tools": TOOLS}
    resp = httpx.post(f"{g3.base_url}/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {oa.api_key}"})
    ids = [c["id"] for c in resp.json()["choices"][0]["message"]["tool_calls"]]
    assert len(set(ids)) == 2
    assert all(set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") for i in ids)
    assert ids[0].startswith("gts1_") and not ids[1].startswith("gts1_")

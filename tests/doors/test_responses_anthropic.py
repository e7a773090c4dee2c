"""The Responses door on a model whose channel is an Anthropic upstream: the openai SDK's
``responses.create``, ``previous_response_id`` and ``responses.stream`` through the
canonical form to the Messages API and back, with thinking signatures carried in reasoning
items, a tool call, and one exact record per call."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from tests.doors.anthropic_gateway import record
from tests.doors.test_anthropic_upstream import SIG, sonnet_cost
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.gateway_process import GatewayProcess

TOOLS = [{"type": "function", "name": "get_weather", "description": "The weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
USAGE = {"input_tokens": 30, "output_tokens": 12, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}


@pytest.fixture
def oai(agw: GatewayProcess, akey: str, fake_anthropic: FakeAnthropic) -> Iterator[openai.OpenAI]:
    fake_anthropic.reset()
    yield openai.OpenAI(api_key=akey, base_url=agw.base_url + "/v1", max_retries=0)


def test_a_conversation_with_a_tool_call(
    oai: openai.OpenAI, agw: GatewayProcess, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(content=[
        {"type": "thinking", "thinking": "Use the weather tool.", "signature": SIG},
        {"type": "tool_use", "id": "toolu_07", "name": "get_weather", "input": {"city": "Paris"}},
    ], stop_reason="tool_use", usage=USAGE)
    raw = oai.responses.with_raw_response.create(
        model="claude-sonnet-4-6", instructions="Be brief.", input="Weather in Paris?", tools=TOOLS,  # type: ignore[arg-type]
        max_output_tokens=200,
    )
    first = raw.parse()
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", '{"city":"Paris"}')]
    sent = fake_anthropic.requests[-1].json
    assert sent["model"] == "claude-test" and sent["system"] == "Be brief."
    assert sent["tools"][0]["name"] == "get_weather" and sent["tools"][0]["input_schema"]["required"] == ["city"]
    rec = record(agw, raw.headers["x-gemgate-request-id"])
    assert rec["door"] == "openai_responses" and rec["channel"] == "claude/claude-test"
    assert rec["cost_nanos"] == sonnet_cost(30, 0, 0, 12) and not rec["estimated"]
    assert first.usage is not None and (first.usage.input_tokens, first.usage.output_tokens) == (30, 12)

    # The tool's result, by previous_response_id: the whole conversation reaches Anthropic,
    # the thinking block with the signature it came with, the result tied to the call's id.
    fake_anthropic.script(content=[{"type": "text", "text": "Sunny, 21 C."}], usage=USAGE)
    second = oai.responses.create(
        model="claude-sonnet-4-6", previous_response_id=first.id, tools=TOOLS,  # type: ignore[arg-type]
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"sky": "sunny"}'}],
    )
    assert second.output_text == "Sunny, 21 C."
    messages = fake_anthropic.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assistant = messages[1]["content"]
    assert {"type": "thinking", "thinking": "Use the weather tool.", "signature": SIG} in assistant
    use = next(b for b in assistant if b["type"] == "tool_use")
    result = next(b for b in messages[2]["content"] if b["type"] == "tool_result")
    assert use["name"] == "get_weather" and use["input"] == {"city": "Paris"}
    assert result["tool_use_id"] == use["id"]


def test_a_streamed_answer(oai: openai.OpenAI, agw: GatewayProcess, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(content=[{"type": "text", "text": "one two three"}], usage=USAGE)
    with oai.responses.stream(model="claude-sonnet-4-6", input="Count.", max_output_tokens=50) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "one two three" and len(deltas) > 1
    assert final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 12
    assert fake_anthropic.requests[-1].json["stream"] is True

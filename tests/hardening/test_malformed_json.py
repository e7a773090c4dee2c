"""Malformed JSON is refused with 400 in the door's own envelope, naming the field, never a
500: nesting too deep, integers beyond 64 bits, and keys given twice (which the gateway
would validate one way while the original bytes go upstream another)."""

from __future__ import annotations

import json

import httpx
import pytest
from tests.gateway_process import GatewayProcess

MODEL = "gemini-2.5-flash"
GEMINI = f"/v1beta/models/{MODEL}"


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"type": "string"}
    for _ in range(depth):
        value = {"type": "object", "properties": {"a": value}}
    return value


def deep_args(depth: int) -> str:
    """``{"a": {"a": ... {}}}``, ``depth`` objects deep, as JSON text (too deep for json.dumps)."""
    return '{"a": ' * depth + "{}" + "}" * depth


def user(text: str = "hi") -> dict[str, object]:
    return {"role": "user", "parts": [{"text": text}]}


GEMINI_CASES = {
    "countTokens args 1000 deep": (
        ":countTokens",
        '{"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": '
        + deep_args(1000)
        + "}}]}]}",
        "contents[0].parts[0].functionCall.args",
    ),
    "tool parameters 300 deep": (
        ":generateContent",
        json.dumps({"contents": [user()], "tools": [{"functionDeclarations": [{"name": "f", "parameters": nested(300)}]}]}),
        "tools[0].functionDeclarations[0].parameters",
    ),
    "response schema 300 deep": (
        ":generateContent",
        json.dumps({"contents": [user()], "generationConfig": {"responseMimeType": "application/json", "responseSchema": nested(300)}}),
        "generationConfig.responseSchema",
    ),
    "maxOutputTokens beyond 64 bits": (
        ":generateContent",
        '{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 99999999999999999999999}}',
        "generationConfig.maxOutputTokens",
    ),
    "a key given twice": (
        ":generateContent",
        '{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 5, "maxOutputTokens" : 60000}}',
        "generationConfig.maxOutputTokens",
    ),
}


@pytest.mark.parametrize("case", list(GEMINI_CASES))
def test_gemini_door(gateway: GatewayProcess, api_key: str, case: str) -> None:
    method, body, field = GEMINI_CASES[case]
    resp = httpx.post(
        gateway.base_url + GEMINI + method,
        content=body.encode(),
        headers={"x-goog-api-key": api_key, "content-type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and err["code"] == 400
    assert field in err["message"], err["message"]
    violations = [d for d in err["details"] if d["@type"].endswith("BadRequest")]
    assert violations[0]["fieldViolations"][0]["field"].startswith(field)


def tool_turns(arguments: str) -> list[dict[str, object]]:
    return [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]


OPENAI_CASES = {
    "tool-call argument beyond 64 bits": (
        json.dumps({"model": MODEL, "messages": tool_turns('{"n": 99999999999999999999999}')}),
        "messages[1].tool_calls[0].function.arguments.n",
    ),
    "tool-call arguments 1000 deep": (
        json.dumps({"model": MODEL, "messages": tool_turns(deep_args(1000))}),
        "messages[1].tool_calls[0].function.arguments",
    ),
    "tool parameters 300 deep": (
        json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                    "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(300)}}]}),
        "tools[0].function.parameters",
    ),
    "json_schema 300 deep": (
        json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": nested(300)}}}),
        "response_format.json_schema.schema",
    ),
    "a key given twice": (
        f'{{"model": "{MODEL}", "max_tokens": 5, "messages": [{{"role": "user", "content": "hi"}}], "max_tokens": 100000}}',
        "max_tokens",
    ),
}


@pytest.mark.parametrize("case", list(OPENAI_CASES))
def test_openai_door(gateway: GatewayProcess, api_key: str, case: str) -> None:
    body, field = OPENAI_CASES[case]
    resp = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        content=body.encode(),
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert (err["param"] or "").startswith(field), err


def test_a_colon_inside_a_string_is_no_duplicate(gateway: GatewayProcess, api_key: str) -> None:
    body = '{"contents": [{"parts": [{"text": "say \\"a\\": 1, then \\"a\\" : 2"}]}]}'
    resp = httpx.post(
        gateway.base_url + GEMINI + ":countTokens",
        content=body.encode(),
        headers={"x-goog-api-key": api_key},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text

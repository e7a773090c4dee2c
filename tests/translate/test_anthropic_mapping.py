"""The Anthropic <-> Gemini mapping, field by field: parameters, stop reasons, usage and the
error envelope."""

from __future__ import annotations

from typing import Any

import pytest

from gemgate.doors.anthropic_errors import anthropic_error_body, anthropic_status
from gemgate.errors import (
    ApiKeyInvalid,
    BadGateway,
    BudgetExhausted,
    DeadlineExceeded,
    GatewayError,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    UpstreamRateLimited,
)
from gemgate.translate.anthropic_common import stop_reason, usage_to_anthropic, usage_to_gemini
from gemgate.translate.anthropic_outbound import gemini_to_messages
from gemgate.translate.anthropic_request import Untranslatable, messages_to_gemini

USER = [{"role": "user", "content": "hi"}]


def translate(**fields: Any) -> dict[str, Any]:
    return messages_to_gemini({"model": "m", "max_tokens": 10, "messages": USER, **fields})


@pytest.mark.parametrize(
    ("thinking", "config"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, {"includeThoughts": True, "thinkingBudget": 2048}),
        ({"type": "adaptive"}, {"includeThoughts": True}),
        ({"type": "adaptive", "display": "omitted"}, {"includeThoughts": False}),
        ({"type": "between_tools"}, {"includeThoughts": True}),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking(thinking: dict[str, Any], config: dict[str, Any] | None) -> None:
    assert translate(thinking=thinking)["generationConfig"].get("thinkingConfig") == config


@pytest.mark.parametrize(
    ("choice", "fcc"),
    [
        ({"type": "auto"}, {"mode": "AUTO"}),
        ({"type": "any", "disable_parallel_tool_use": True}, {"mode": "ANY"}),
        ({"type": "tool", "name": "f"}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ({"type": "none"}, {"mode": "NONE"}),
    ],
)
def test_tool_choice(choice: dict[str, Any], fcc: dict[str, Any]) -> None:
    assert translate(tool_choice=choice)["toolConfig"] == {"functionCallingConfig": fcc}
    back = gemini_to_messages(translate(tool_choice=choice), model="m", stream=False, default_max_tokens=1)
    assert back["tool_choice"] == {k: v for k, v in choice.items() if k != "disable_parallel_tool_use"}


def test_structured_output_both_ways() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    request = translate(output_config={"effort": "high", "format": {"type": "json_schema", "schema": schema}})
    assert request["generationConfig"]["responseMimeType"] == "application/json"
    assert request["generationConfig"]["responseJsonSchema"] == schema
    back = gemini_to_messages(request, model="m", stream=True, default_max_tokens=1)
    assert back["output_config"] == {"format": {"type": "json_schema", "schema": schema}} and back["stream"]


def test_agent_fields_are_accepted() -> None:
    request = translate(
        metadata={"user_id": "u"}, service_tier="auto", context_management={"edits": []},
        cache_control={"type": "ephemeral"}, speed="fast", inference_geo="us", some_future_field=1,
        system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    )
    assert request["systemInstruction"] == {"parts": [{"text": "s"}]}


@pytest.mark.parametrize(
    "fields",
    [
        {"stop_sequences": list("abcdef")},
        {"tools": [{"type": "bash_20250124", "name": "bash"}]},
        {"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]},
        {"container": "c1"},
        {"messages": [{"role": "user", "content": [{"type": "container_upload", "file_id": "f"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
    ],
)
def test_only_anthropic_can_serve(fields: dict[str, Any]) -> None:
    with pytest.raises(Untranslatable):
        translate(**fields)
    body = {"model": "m", "max_tokens": 10, "messages": USER, **fields}
    assert messages_to_gemini(body, lenient=True)["contents"]  # admission still reads it


def test_documents_and_search_results() -> None:
    content = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]}},
        {"type": "search_result", "title": "T", "source": "S", "content": [{"type": "text", "text": "found"}]},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}},
    ]
    parts = translate(messages=[{"role": "user", "content": content}])["contents"][0]["parts"]
    assert parts == [
        {"text": "plain doc"},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/a.pdf"}},
        {"text": "inner"},
        {"text": "T S\nfound"},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/x.png"}},
    ]


@pytest.mark.parametrize(
    ("finish", "calls", "blocked", "reason"),
    [("STOP", False, False, "end_turn"), ("MAX_TOKENS", False, False, "max_tokens"),
     ("STOP", True, False, "tool_use"), ("SAFETY", False, False, "refusal"),
     ("PROHIBITED_CONTENT", True, False, "refusal"), (None, False, True, "refusal")],
)
def test_stop_reasons(finish: str | None, calls: bool, blocked: bool, reason: str) -> None:
    assert stop_reason(finish, has_calls=calls, blocked=blocked) == reason


def test_usage_both_ways() -> None:
    meta = {"promptTokenCount": 120, "cachedContentTokenCount": 100, "candidatesTokenCount": 7,
            "thoughtsTokenCount": 5, "toolUsePromptTokenCount": 3, "totalTokenCount": 135}
    assert usage_to_anthropic(meta) == {"input_tokens": 23, "output_tokens": 12,
                                        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}
    assert usage_to_gemini({"input_tokens": 20, "output_tokens": 12, "cache_read_input_tokens": 100,
                            "cache_creation_input_tokens": 30}) == {
        "promptTokenCount": 150, "candidatesTokenCount": 12, "totalTokenCount": 162, "cachedContentTokenCount": 100}


@pytest.mark.parametrize(
    ("err", "status", "kind"),
    [
        (ApiKeyInvalid(), 401, "authentication_error"),
        (PermissionDenied("no key", reason="API_KEY_MISSING"), 401, "authentication_error"),
        (PermissionDenied("not this model"), 403, "permission_error"),
        (NotFound("x", metadata={"model": "m"}), 404, "not_found_error"),
        (InvalidArgument("bad"), 400, "invalid_request_error"),
        (PayloadTooLarge("big"), 413, "request_too_large"),
        (ResourceExhausted("slow down", reason="RATE_LIMIT_EXCEEDED", retry_after=3), 429, "rate_limit_error"),
        (BudgetExhausted("budget", reason="BUDGET_EXHAUSTED"), 429, "rate_limit_error"),
        (UpstreamRateLimited("upstream"), 429, "rate_limit_error"),
        (Unavailable("busy"), 529, "overloaded_error"),
        (BadGateway("broke"), 502, "api_error"),
        (DeadlineExceeded("slow"), 504, "api_error"),
    ],
)
def test_error_envelope(err: GatewayError, status: int, kind: str) -> None:
    body = anthropic_error_body(err)
    assert anthropic_status(err) == status
    assert body["type"] == "error" and body["error"]["type"] == kind and body["error"]["message"]

"""OpenAI Responses parameters -> Gemini generationConfig (tools are in
:mod:`responses_tools`).

``reasoning.effort`` sets the thinking budget and ``reasoning.summary`` asks for thought
summaries; ``text.format`` json_schema sets the response schema.
"""

from __future__ import annotations

from typing import Any

from gemgate.errors import InvalidArgument
from gemgate.translate.openai_params import REASONING_BUDGET

BUDGETS = {**REASONING_BUDGET, "xhigh": 32768}


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(path: str, value: Any) -> float | int:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(path, "must be a number")
    return value


def generation_config(body: dict[str, Any]) -> dict[str, Any]:
    """max_output_tokens, temperature, top_p, top_logprobs, text and reasoning."""
    config: dict[str, Any] = {}
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not _is_int(limit) or limit < 1:
            raise _bad("max_output_tokens", "must be an integer >= 1")
        config["maxOutputTokens"] = limit
    for name, gemini in (("temperature", "temperature"), ("top_p", "topP")):
        if body.get(name) is not None:
            config[gemini] = _number(name, body[name])
    top = body.get("top_logprobs")
    if top is not None:
        if not _is_int(top) or not 0 <= top <= 20:
            raise _bad("top_logprobs", "must be an integer from 0 to 20")
        if top:
            config["responseLogprobs"] = True
            config["logprobs"] = top
    _text(body.get("text"), config)
    _reasoning(body.get("reasoning"), config)
    return config


def _text(text: Any, config: dict[str, Any]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise _bad("text", "must be an object")
    fmt = text.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise _bad("text.format", "must be an object")
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise _bad("text.format.schema", "must be a JSON Schema object")
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = schema
        return
    raise _bad("text.format.type", f"must be text, json_object or json_schema, got {kind!r}")


def _reasoning(reasoning: Any, config: dict[str, Any]) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise _bad("reasoning", "must be an object")
    thinking: dict[str, Any] = {}
    effort = reasoning.get("effort")
    if effort is not None:
        if effort not in BUDGETS:
            raise _bad("reasoning.effort", "must be one of " + ", ".join(BUDGETS))
        thinking["thinkingBudget"] = BUDGETS[effort]
    summary = reasoning.get("summary", reasoning.get("generate_summary"))
    if summary is not None:
        if summary not in ("auto", "concise", "detailed"):
            raise _bad("reasoning.summary", "must be auto, concise or detailed")
        if thinking.get("thinkingBudget") != 0:
            thinking["includeThoughts"] = True
    if thinking:
        config["thinkingConfig"] = thinking

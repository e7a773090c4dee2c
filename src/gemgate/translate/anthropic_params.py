"""Anthropic Messages parameters -> Gemini generationConfig and toolConfig (the Anthropic
door's side): ``max_tokens``, sampling, ``stop_sequences``, ``thinking``,
``output_config.format`` and ``tool_choice``, each validated with errors naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gemgate.errors import InvalidArgument

_TOOL_CHOICE = {"auto": "AUTO", "any": "ANY", "none": "NONE"}
MAX_STOP_SEQUENCES = 5


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def generation_config(
    body: dict[str, Any], *, count_only: bool, refuse: Callable[[str, str], None]
) -> dict[str, Any]:
    """``max_tokens``, sampling, stop sequences, thinking and output format -> Gemini's
    generationConfig. ``refuse(path, what)`` is told of what only Anthropic can serve."""
    config: dict[str, Any] = {}
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        if not count_only:
            raise _bad("max_tokens", "is required")
    elif not _is_int(max_tokens) or max_tokens < 1:
        raise _bad("max_tokens", "must be an integer >= 1")
    else:
        config["maxOutputTokens"] = max_tokens
    for name, gemini in (("temperature", "temperature"), ("top_p", "topP")):
        value = body.get(name)
        if value is not None:
            if not _is_num(value) or not 0 <= value <= 1:
                raise _bad(name, "must be a number from 0 to 1")
            config[gemini] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 1:
            raise _bad("top_k", "must be an integer >= 1")
        config["topK"] = top_k
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences", "must be an array of strings")
        if len(stops) > MAX_STOP_SEQUENCES:
            refuse("stop_sequences", f"more than {MAX_STOP_SEQUENCES} stop sequences")
            stops = stops[:MAX_STOP_SEQUENCES]
        if stops:
            config["stopSequences"] = stops
    thinking = thinking_config(body.get("thinking"))
    if thinking is not None:
        config["thinkingConfig"] = thinking
    schema = output_schema(body.get("output_config"))
    if schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = schema
    return config


def thinking_config(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("thinking", "must be an object")
    kind = value.get("type")
    display = value.get("display")
    if display not in (None, "summarized", "omitted"):
        raise _bad("thinking.display", "must be summarized or omitted")
    shown = {"includeThoughts": display != "omitted"}
    if kind == "enabled":
        budget = value.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise _bad("thinking.budget_tokens", "must be an integer >= 1")
        return {**shown, "thinkingBudget": budget}
    if kind in ("adaptive", "between_tools"):
        return shown
    if kind == "disabled":
        return None
    raise _bad("thinking.type", "must be enabled, adaptive, between_tools or disabled")


def output_schema(value: Any) -> dict[str, Any] | None:
    """``output_config.format``'s JSON schema (``effort`` has no Gemini counterpart that
    every model takes: it is left to the model's default)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("output_config", "must be an object")
    fmt = value.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _bad("output_config.format.type", "must be json_schema")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _bad("output_config.format.schema", "must be a JSON Schema object")
    return schema


def tool_choice(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad("tool_choice", "must be an object")
    kind = value.get("type")
    if kind in _TOOL_CHOICE:
        return {"mode": _TOOL_CHOICE[kind]}
    if kind == "tool":
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise _bad("tool_choice.name", "must be a non-empty string")
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise _bad("tool_choice.type", "must be auto, any, tool or none")

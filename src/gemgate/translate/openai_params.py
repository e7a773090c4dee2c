"""OpenAI chat.completions parameters -> Gemini generationConfig, tools and toolConfig.

Each handler validates one top-level OpenAI field and writes its Gemini form into the
generationConfig (``config``) or the request itself (``request``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gemgate.errors import InvalidArgument

REASONING_BUDGET = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}

Handler = Callable[[Any, dict[str, Any], dict[str, Any]], None]
_TOOL_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_MODALITIES = {"text": "TEXT", "image": "IMAGE"}


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _positive_int(path: str, value: Any, minimum: int = 1) -> int:
    if not _is_int(value) or value < minimum:
        raise _bad(path, f"must be an integer >= {minimum}")
    return int(value)


def _number(path: str, value: Any) -> Any:
    if not _is_num(value):
        raise _bad(path, "must be a number")
    return value


def _max_tokens(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    config["maxOutputTokens"] = _positive_int("max_tokens", value)


def _max_completion_tokens(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    _positive_int("max_completion_tokens", value)  # applied last: it wins over max_tokens


def _stop(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _bad("stop", "must be a string or an array of strings")
    if stops:
        config["stopSequences"] = stops


def _n(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    config["candidateCount"] = _positive_int("n", value)


def _simple(openai: str, gemini: str, kind: str) -> Handler:
    def handler(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
        if kind == "int":
            if not _is_int(value):
                raise _bad(openai, "must be an integer")
            config[gemini] = value
        else:
            config[gemini] = _number(openai, value)

    return handler


def _response_format(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        raise _bad("response_format", "must be an object")
    kind = value.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise _bad("response_format.json_schema", "must be an object")
        config["responseMimeType"] = "application/json"
        schema = spec.get("schema")
        if schema is not None:
            if not isinstance(schema, dict):
                raise _bad("response_format.json_schema.schema", "must be an object")
            config["responseJsonSchema"] = schema
        return
    raise _bad("response_format.type", f"response format {kind!r} is not supported")


def _reasoning_effort(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    if value not in REASONING_BUDGET:
        raise _bad("reasoning_effort", "must be one of none, minimal, low, medium, high")
    config["thinkingConfig"] = {"thinkingBudget": REASONING_BUDGET[value]}


def _logprobs(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    if not isinstance(value, bool):
        raise _bad("logprobs", "must be a boolean")
    if value:
        config["responseLogprobs"] = True


def _top_logprobs(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    config["logprobs"] = _positive_int("top_logprobs", value, minimum=0)


def _modalities(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    if not isinstance(value, list) or not value:
        raise _bad("modalities", "must be a non-empty array")
    out: list[str] = []
    for j, item in enumerate(value):
        if item not in _MODALITIES:
            raise _bad(f"modalities[{j}]", f"output modality {item!r} is not supported")
        out.append(_MODALITIES[item])
    if out != ["TEXT"]:
        config["responseModalities"] = out


def _tools(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    if not isinstance(value, list):
        raise _bad("tools", "must be an array")
    decls: list[dict[str, Any]] = []
    for i, tool in enumerate(value):
        path = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad(path, "must be an object")
        if tool.get("type") != "function":
            raise _bad(f"{path}.type", f"tool type {tool.get('type')!r} is not supported")
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise _bad(f"{path}.function", "must be an object")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{path}.function.name", "must be a non-empty string")
        decl: dict[str, Any] = {"name": name}
        description = fn.get("description")
        if description is not None:
            if not isinstance(description, str):
                raise _bad(f"{path}.function.description", "must be a string")
            decl["description"] = description
        params = fn.get("parameters")
        if params is not None:
            if not isinstance(params, dict):
                raise _bad(f"{path}.function.parameters", "must be a JSON Schema object")
            decl["parametersJsonSchema"] = params
        decls.append(decl)
    if decls:
        request["tools"] = [{"functionDeclarations": decls}]


def _named(choice: Any, path: str) -> str:
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str) or not name:
        raise _bad(f"{path}.function.name", "must be a non-empty string")
    return name


def _tool_choice(value: Any, config: dict[str, Any], request: dict[str, Any]) -> None:
    fcc: dict[str, Any]
    if isinstance(value, str):
        if value not in _TOOL_CHOICE:
            raise _bad("tool_choice", "must be auto, none, required or a function choice")
        fcc = {"mode": _TOOL_CHOICE[value]}
    elif isinstance(value, dict) and value.get("type") == "function":
        fcc = {"mode": "ANY", "allowedFunctionNames": [_named(value, "tool_choice")]}
    elif isinstance(value, dict) and value.get("type") == "allowed_tools":
        allowed = value.get("allowed_tools")
        if not isinstance(allowed, dict) or not isinstance(allowed.get("tools"), list):
            raise _bad("tool_choice.allowed_tools", "must be an object with a tools array")
        if allowed.get("mode") != "required":
            raise _bad(
                "tool_choice.allowed_tools.mode", "only 'required' can be expressed upstream"
            )
        names = [
            _named(t, f"tool_choice.allowed_tools.tools[{k}]")
            for k, t in enumerate(allowed["tools"])
        ]
        fcc = {"mode": "ANY", "allowedFunctionNames": names}
    else:
        raise _bad("tool_choice", "must be auto, none, required or a function choice")
    request["toolConfig"] = {"functionCallingConfig": fcc}


HANDLERS: dict[str, Handler | None] = {
    "model": None,
    "messages": None,
    "max_tokens": _max_tokens,
    "max_completion_tokens": _max_completion_tokens,
    "stop": _stop,
    "n": _n,
    "temperature": _simple("temperature", "temperature", "num"),
    "top_p": _simple("top_p", "topP", "num"),
    "top_k": _simple("top_k", "topK", "int"),
    "presence_penalty": _simple("presence_penalty", "presencePenalty", "num"),
    "frequency_penalty": _simple("frequency_penalty", "frequencyPenalty", "num"),
    "seed": _simple("seed", "seed", "int"),
    "response_format": _response_format,
    "reasoning_effort": _reasoning_effort,
    "logprobs": _logprobs,
    "top_logprobs": _top_logprobs,
    "modalities": _modalities,
    "tools": _tools,
    "tool_choice": _tool_choice,
}

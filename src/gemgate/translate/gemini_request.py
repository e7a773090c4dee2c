"""Gemini GenerateContentRequest -> OpenAI chat.completions request (the OpenAI provider's side).

The inverse of :func:`gemgate.translate.openai_request.chat_to_gemini`. What an
OpenAI-compatible upstream cannot express is rejected with an :class:`InvalidArgument`
naming the Gemini field (``contents[0].parts[1].fileData``, ``tools[0].googleSearch``...).
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

from gemgate.errors import InvalidArgument
from gemgate.translate.openai_common import AUDIO_FORMATS, data_uri, dumps_args, std_b64

_TOP_LEVEL = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
        "labels",
        "serviceTier",
        "model",
    }
)
_IGNORED = frozenset({"labels", "serviceTier", "model"})
# Part fields that carry no content of their own and may be dropped.
_PART_META = frozenset({"thought", "thoughtSignature", "mediaResolution", "partMetadata"})
_SAFETY_OFF = frozenset({"BLOCK_NONE", "OFF", "HARM_BLOCK_THRESHOLD_UNSPECIFIED", 0, 4, 5})
_MODES = {0: "MODE_UNSPECIFIED", 1: "AUTO", 2: "ANY", 3: "NONE", 4: "VALIDATED"}
_SIMPLE = {
    "candidateCount": "n",
    "stopSequences": "stop",
    "maxOutputTokens": "max_completion_tokens",
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "responseLogprobs": "logprobs",
    "logprobs": "top_logprobs",
}
_LATER = frozenset(
    {
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "thinkingConfig",
    }
)


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def _unsupported(path: str) -> InvalidArgument:
    return _bad(path, "is not supported by OpenAI-compatible upstreams")


def gemini_to_chat(request: dict[str, Any], *, model: str, stream: bool) -> dict[str, Any]:
    """A canonical Gemini request -> an OpenAI chat.completions request body."""
    if not isinstance(request, dict):
        raise _bad("", "the request must be a JSON object")
    for key, value in request.items():
        if key not in _TOP_LEVEL:
            raise _bad(key, f"unknown field '{key}'")
        if key == "cachedContent" and value:
            raise _unsupported(key)
    messages: list[dict[str, Any]] = []
    system = request.get("systemInstruction")
    if system is not None:
        messages.extend(_system(system))
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _bad("contents", "must be a non-empty array")
    messages.extend(_contents(contents))

    body: dict[str, Any] = {"model": model, "messages": messages}
    config = request.get("generationConfig")
    if config is not None:
        if not isinstance(config, dict):
            raise _bad("generationConfig", "must be an object")
        _generation_config(config, body)
    tools = request.get("tools")
    if tools is not None:
        body_tools = _tools(tools)
        if body_tools:
            body["tools"] = body_tools
    tool_config = request.get("toolConfig")
    if tool_config is not None:
        choice = _tool_choice(tool_config)
        if choice is not None:
            body["tool_choice"] = choice
    _check_safety(request.get("safetySettings"))
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# ---------------------------------------------------------------- contents


def _system(system: Any) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, dict):
        raise _bad("systemInstruction", "must be a Content object")
    parts = system.get("parts") or []
    if not isinstance(parts, list):
        raise _bad("systemInstruction.parts", "must be an array")
    texts: list[str] = []
    for j, part in enumerate(parts):
        path = f"systemInstruction.parts[{j}]"
        if not isinstance(part, dict):
            raise _bad(path, "must be an object")
        if "text" in part:
            if not isinstance(part["text"], str):
                raise _bad(f"{path}.text", "must be a string")
            texts.append(part["text"])
        else:
            _reject_other(part, path)
    if not texts:
        return []
    if len(texts) == 1:
        return [{"role": "system", "content": texts[0]}]
    return [{"role": "system", "content": [{"type": "text", "text": t} for t in texts]}]


def _reject_other(part: dict[str, Any], path: str) -> None:
    """Raise for the first field of a part that cannot be expressed; allow pure metadata."""
    for key in part:
        if key not in _PART_META:
            raise _unsupported(f"{path}.{key}")


def _contents(contents: list[Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    pending: dict[str, list[str]] = {}  # function name -> call ids awaiting a response
    for ci, content in enumerate(contents):
        path = f"contents[{ci}]"
        if not isinstance(content, dict):
            raise _bad(path, "must be an object")
        role = content.get("role") or "user"
        parts = content.get("parts") or []
        if not isinstance(parts, list):
            raise _bad(f"{path}.parts", "must be an array")
        if role == "model":
            messages.append(_assistant(parts, path, ci, pending))
        elif role == "user":
            messages.extend(_user(parts, path, ci, pending))
        else:
            raise _bad(f"{path}.role", "must be 'user' or 'model'")
    return messages


def _assistant(
    parts: list[Any], path: str, ci: int, pending: dict[str, list[str]]
) -> dict[str, Any]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    pending.clear()
    for pi, part in enumerate(parts):
        ppath = f"{path}.parts[{pi}]"
        if not isinstance(part, dict):
            raise _bad(ppath, "must be an object")
        if "functionCall" in part:
            fc = part["functionCall"]
            if not isinstance(fc, dict) or not isinstance(fc.get("name"), str):
                raise _bad(f"{ppath}.functionCall", "must be an object with a name")
            args = fc.get("args")
            if args is not None and not isinstance(args, dict):
                raise _bad(f"{ppath}.functionCall.args", "must be an object")
            call_id = fc.get("id") or f"call_{ci}_{pi}"
            pending.setdefault(fc["name"], []).append(call_id)
            call: dict[str, Any] = {
                "id": call_id,
                "type": "function",
                "function": {"name": fc["name"], "arguments": dumps_args(args or {})},
            }
            signature = part.get("thoughtSignature")
            if isinstance(signature, str) and signature:
                call["extra_content"] = {"google": {"thought_signature": signature}}
            calls.append(call)
        elif "text" in part:
            if not isinstance(part["text"], str):
                raise _bad(f"{ppath}.text", "must be a string")
            (thoughts if part.get("thought") else texts).append(part["text"])
        else:
            _reject_other(part, ppath)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _user(
    parts: list[Any], path: str, ci: int, pending: dict[str, list[str]]
) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for pi, part in enumerate(parts):
        ppath = f"{path}.parts[{pi}]"
        if not isinstance(part, dict):
            raise _bad(ppath, "must be an object")
        if "functionResponse" in part:
            tool_messages.append(_tool_message(part["functionResponse"], ppath, ci, pi, pending))
        elif "text" in part:
            if not isinstance(part["text"], str):
                raise _bad(f"{ppath}.text", "must be a string")
            items.append({"type": "text", "text": part["text"]})
        elif "inlineData" in part:
            items.append(_inline(part["inlineData"], f"{ppath}.inlineData"))
        elif "fileData" in part:
            items.append(_file_data(part["fileData"], f"{ppath}.fileData"))
        elif "functionCall" in part:
            raise _bad(f"{ppath}.functionCall", "only model turns may call functions")
        else:
            _reject_other(part, ppath)
    if not items:
        return tool_messages or [{"role": "user", "content": ""}]
    content: Any = items[0]["text"] if len(items) == 1 and items[0]["type"] == "text" else items
    return [*tool_messages, {"role": "user", "content": content}]


def _tool_message(
    fr: Any, path: str, ci: int, pi: int, pending: dict[str, list[str]]
) -> dict[str, Any]:
    if not isinstance(fr, dict) or not isinstance(fr.get("name"), str):
        raise _bad(f"{path}.functionResponse", "must be an object with a name")
    waiting = pending.get(fr["name"], [])
    call_id = fr.get("id")
    if call_id:
        if call_id in waiting:
            waiting.remove(call_id)
    elif waiting:
        call_id = waiting.pop(0)
    else:
        call_id = f"call_{ci}_{pi}"
    response = fr.get("response")
    if response is None:
        response = {}
    try:
        text = json.dumps(response, ensure_ascii=False)
    except (TypeError, ValueError):
        raise _bad(f"{path}.functionResponse.response", "must be JSON") from None
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _inline(inline: Any, path: str) -> dict[str, Any]:
    if not isinstance(inline, dict):
        raise _bad(path, "must be an object")
    mime = inline.get("mimeType")
    data = inline.get("data")
    if not isinstance(mime, str) or not mime:
        raise _bad(f"{path}.mimeType", "must be a non-empty string")
    if not isinstance(data, str):
        raise _bad(f"{path}.data", "must be a base64 string")
    mime = mime.lower()
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": data_uri(mime, data)}}
    if mime.startswith("audio/"):
        fmt = AUDIO_FORMATS.get(mime)
        if fmt is None:
            raise _bad(f"{path}.mimeType", f"{mime} is not supported upstream (only wav and mp3)")
        return {"type": "input_audio", "input_audio": {"data": std_b64(data), "format": fmt}}
    if mime.startswith("video/"):
        raise _bad(f"{path}.mimeType", f"{mime} is not supported by OpenAI-compatible upstreams")
    ext = mimetypes.guess_extension(mime) or ""
    return {"type": "file", "file": {"filename": f"file{ext}", "file_data": data_uri(mime, data)}}


def _file_data(file: Any, path: str) -> dict[str, Any]:
    if not isinstance(file, dict):
        raise _bad(path, "must be an object")
    uri = file.get("fileUri")
    mime = str(file.get("mimeType") or "image/*").lower()
    if (
        isinstance(uri, str)
        and uri.lower().startswith(("http://", "https://"))
        and mime.startswith("image/")
    ):
        return {"type": "image_url", "image_url": {"url": uri}}
    raise _bad(path, "only http(s) image URLs can be sent to OpenAI-compatible upstreams")


# ---------------------------------------------------------------- configuration


def _generation_config(config: dict[str, Any], body: dict[str, Any]) -> None:
    for key, value in config.items():
        if value is None:
            continue
        if key in _SIMPLE:
            body[_SIMPLE[key]] = value
        elif key not in _LATER:
            raise _unsupported(f"generationConfig.{key}")
    modalities = config.get("responseModalities")
    if modalities is not None and (
        not isinstance(modalities, list) or any(m not in ("TEXT", 1) for m in modalities)
    ):
        raise _unsupported("generationConfig.responseModalities")
    _response_format(config, body)
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        effort = _reasoning_effort(thinking)
        if effort is not None:
            body["reasoning_effort"] = effort


def _response_format(config: dict[str, Any], body: dict[str, Any]) -> None:
    mime = config.get("responseMimeType")
    json_schema = config.get("responseJsonSchema")
    schema = config.get("responseSchema")
    if mime in (None, "", "text/plain"):
        if json_schema is not None or schema is not None:
            raise _bad(
                "generationConfig.responseMimeType", "a response schema needs application/json"
            )
        return
    if mime != "application/json":
        raise _unsupported("generationConfig.responseMimeType")
    if json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": json_schema},
        }
    elif schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema_to_json_schema(schema)},
        }
    else:
        body["response_format"] = {"type": "json_object"}


def _reasoning_effort(thinking: Any) -> str | None:
    if not isinstance(thinking, dict):
        raise _bad("generationConfig.thinkingConfig", "must be an object")
    for key in thinking:
        if key not in ("thinkingBudget", "thinkingLevel", "includeThoughts"):
            raise _unsupported(f"generationConfig.thinkingConfig.{key}")
    level = thinking.get("thinkingLevel")
    if isinstance(level, str) and level and level != "THINKING_LEVEL_UNSPECIFIED":
        return level.lower()
    budget = thinking.get("thinkingBudget")
    if budget is None or budget == -1:
        return None
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise _bad("generationConfig.thinkingConfig.thinkingBudget", "must be an integer")
    if budget == 0:
        return "none"
    if budget <= 1024:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


_INT_KEYS = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
)


def schema_to_json_schema(schema: Any) -> Any:
    """A Gemini (OpenAPI-subset) Schema -> JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            if isinstance(value, str) and value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif key in ("nullable", "propertyOrdering"):
            continue
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: schema_to_json_schema(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = schema_to_json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [schema_to_json_schema(v) for v in value]
        elif key == "example":
            out["examples"] = [value]
        elif key in _INT_KEYS and isinstance(value, str) and value.isdigit():
            out[key] = int(value)
        else:
            out[key] = value
    if schema.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools", "must be an array")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad(path, "must be an object")
        for key, value in tool.items():
            if key != "functionDeclarations":
                raise _unsupported(f"{path}.{key}")
            if not isinstance(value, list):
                raise _bad(f"{path}.functionDeclarations", "must be an array")
            for j, decl in enumerate(value):
                out.append(_function(decl, f"{path}.functionDeclarations[{j}]"))
    return out


def _function(decl: Any, path: str) -> dict[str, Any]:
    if not isinstance(decl, dict) or not isinstance(decl.get("name"), str):
        raise _bad(path, "must be an object with a name")
    fn: dict[str, Any] = {"name": decl["name"]}
    for key, value in decl.items():
        if key == "description" and value is not None:
            fn["description"] = value
        elif key == "parametersJsonSchema" and value is not None:
            fn["parameters"] = value
        elif key == "parameters" and value is not None:
            if "parametersJsonSchema" not in decl:
                fn["parameters"] = schema_to_json_schema(value)
        elif key not in ("name", "description", "response", "responseJsonSchema", "behavior"):
            raise _unsupported(f"{path}.{key}")
    return {"type": "function", "function": fn}


def _tool_choice(tool_config: Any) -> Any:
    if not isinstance(tool_config, dict):
        raise _bad("toolConfig", "must be an object")
    for key in tool_config:
        if key != "functionCallingConfig":
            raise _unsupported(f"toolConfig.{key}")
    fcc = tool_config.get("functionCallingConfig")
    if fcc is None:
        return None
    if not isinstance(fcc, dict):
        raise _bad("toolConfig.functionCallingConfig", "must be an object")
    mode = fcc.get("mode")
    mode = _MODES.get(mode, mode) if isinstance(mode, int) else (mode or "MODE_UNSPECIFIED")
    names = fcc.get("allowedFunctionNames") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _bad("toolConfig.functionCallingConfig.allowedFunctionNames", "must be strings")
    if mode in ("AUTO", "MODE_UNSPECIFIED", "NONE"):
        if names:
            raise _bad(
                "toolConfig.functionCallingConfig.allowedFunctionNames",
                "can only be expressed upstream with mode ANY",
            )
        return "none" if mode == "NONE" else "auto"
    if mode == "ANY":
        if not names:
            return "required"
        if len(names) == 1:
            return {"type": "function", "function": {"name": names[0]}}
        return {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "required",
                "tools": [{"type": "function", "function": {"name": n}} for n in names],
            },
        }
    raise _unsupported("toolConfig.functionCallingConfig.mode")


def _check_safety(settings: Any) -> None:
    """Safety settings cannot be sent upstream: only 'do not block' settings are accepted."""
    if settings is None:
        return
    if not isinstance(settings, list):
        raise _bad("safetySettings", "must be an array")
    for i, setting in enumerate(settings):
        threshold = setting.get("threshold") if isinstance(setting, dict) else None
        if threshold not in _SAFETY_OFF:
            raise _bad(
                f"safetySettings[{i}].threshold",
                "only BLOCK_NONE or OFF can be honoured by OpenAI-compatible upstreams",
            )

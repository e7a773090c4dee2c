"""Gemini GenerateContentRequest -> Anthropic Messages request (the Anthropic provider's side).

The inverse of :func:`gemgate.translate.anthropic_request.messages_to_gemini`. What the
Messages API cannot express is rejected with an :class:`InvalidArgument` naming the Gemini
field. Thoughts travel as thinking blocks only when they carry a signature (Anthropic
refuses unsigned ones); signatures on other parts were made by Gemini for Gemini and are
left behind.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from gemgate.errors import InvalidArgument
from gemgate.translate.anthropic_common import valid_signature
from gemgate.translate.gemini_request import schema_to_json_schema

_TOP_LEVEL = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "safetySettings",
     "generationConfig", "cachedContent", "labels", "serviceTier", "model", "store"}
)
_SAFETY_OFF = frozenset({"BLOCK_NONE", "OFF", "HARM_BLOCK_THRESHOLD_UNSPECIFIED", 0, 4, 5})
_PART_META = frozenset({"thought", "thoughtSignature", "mediaResolution", "partMetadata", "videoMetadata"})
_CONFIG_SIMPLE = {"stopSequences": "stop_sequences", "temperature": "temperature", "topP": "top_p", "topK": "top_k"}
# Read below, or (``seed``: a best-effort determinism hint Anthropic has no counterpart
# for, which changes no answer's meaning) left out.
_CONFIG_IGNORED = frozenset({"candidateCount", "responseMimeType", "responseModalities", "thinkingConfig",
                             "maxOutputTokens", "mediaResolution", "responseJsonSchema", "responseSchema",
                             "seed"})
MIN_THINKING_BUDGET = 1024
_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def _unsupported(path: str) -> InvalidArgument:
    return _bad(path, "is not supported by Anthropic upstreams")


def gemini_to_messages(
    request: dict[str, Any], *, model: str, stream: bool, default_max_tokens: int
) -> dict[str, Any]:
    """A canonical Gemini request -> an Anthropic Messages request body."""
    for key, value in request.items():
        if key not in _TOP_LEVEL:
            raise _bad(key, f"unknown field '{key}'")
        if key == "cachedContent" and value:
            raise _unsupported(key)
    _check_safety(request.get("safetySettings"))
    body: dict[str, Any] = {"model": model}
    config = request.get("generationConfig") or {}
    if not isinstance(config, dict):
        raise _bad("generationConfig", "must be an object")
    body["max_tokens"] = config.get("maxOutputTokens") or default_max_tokens
    system = _system(request.get("systemInstruction"))
    if system:
        body["system"] = system
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _bad("contents", "must be a non-empty array")
    body["messages"] = _Contents().messages(contents)
    _config(config, body)
    tools = _tools(request.get("tools"))
    if tools:
        body["tools"] = tools
    choice = _tool_choice(request.get("toolConfig"))
    if choice is not None:
        body["tool_choice"] = choice
    if stream:
        body["stream"] = True
    return body


def _system(system: Any) -> str:
    if system is None:
        return ""
    parts = system.get("parts") if isinstance(system, dict) else None
    if not isinstance(parts, list):
        raise _bad("systemInstruction.parts", "must be an array")
    texts = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise _bad(f"systemInstruction.parts[{j}]", "only text can be a system instruction")
        texts.append(part["text"])
    return "\n\n".join(t for t in texts if t)


class _Contents:
    """Turns contents into messages, giving calls without ids ids their responses share."""

    def __init__(self) -> None:
        self.pending: dict[str, list[str]] = {}  # function name -> call ids awaiting results

    def messages(self, contents: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for ci, content in enumerate(contents):
            path = f"contents[{ci}]"
            if not isinstance(content, dict):
                raise _bad(path, "must be an object")
            role = content.get("role") or "user"
            if role not in ("user", "model"):
                raise _bad(f"{path}.role", "must be 'user' or 'model'")
            parts = content.get("parts")
            if not isinstance(parts, list):
                raise _bad(f"{path}.parts", "must be an array")
            blocks = [b for pi, p in enumerate(parts) if (b := self._part(p, f"{path}.parts[{pi}]", ci, pi))]
            # Anthropic wants a turn's tool results before anything else in it.
            blocks.sort(key=lambda b: b["type"] != "tool_result")
            if blocks:
                out.append({"role": "assistant" if role == "model" else "user", "content": blocks})
        return out

    def _part(self, part: Any, path: str, ci: int, pi: int) -> dict[str, Any] | None:
        if not isinstance(part, dict):
            raise _bad(path, "must be an object")
        if "functionCall" in part:
            return self._call(part["functionCall"], f"{path}.functionCall", ci, pi)
        if "functionResponse" in part:
            return self._result(part["functionResponse"], f"{path}.functionResponse")
        if "inlineData" in part:
            return _inline(part["inlineData"], f"{path}.inlineData")
        if "fileData" in part:
            return _file(part["fileData"], f"{path}.fileData")
        if "text" in part:
            text = part["text"]
            if not isinstance(text, str):
                raise _bad(f"{path}.text", "must be a string")
            if part.get("thought"):
                sig = valid_signature(part.get("thoughtSignature"))
                return {"type": "thinking", "thinking": text, "signature": sig} if sig else None
            return {"type": "text", "text": text} if text else None
        for key in part:
            if key not in _PART_META:
                raise _unsupported(f"{path}.{key}")
        return None

    def _call(self, call: Any, path: str, ci: int, pi: int) -> dict[str, Any]:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
            raise _bad(f"{path}.name", "must be a non-empty string")
        call_id = call.get("id") or f"toolu_{ci:03d}_{pi:03d}"
        self.pending.setdefault(call["name"], []).append(call_id)
        args = call.get("args")
        return {"type": "tool_use", "id": call_id, "name": call["name"], "input": args if isinstance(args, dict) else {}}

    def _result(self, resp: Any, path: str) -> dict[str, Any]:
        if not isinstance(resp, dict) or not isinstance(resp.get("name"), str):
            raise _bad(f"{path}.name", "must be a string")
        waiting = self.pending.get(resp["name"]) or []
        call_id = resp.get("id")
        if call_id in waiting:
            waiting.remove(call_id)
        elif not call_id:
            if not waiting:
                raise _bad(f"{path}.name", f"no earlier functionCall of '{resp['name']}' awaits this response")
            call_id = waiting.pop(0)
        response = resp.get("response")
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
        if isinstance(response, dict) and set(response) == {"error"} and isinstance(response["error"], str):
            block["content"] = response["error"]
            block["is_error"] = True
        elif isinstance(response, dict) and set(response) == {"result"} and isinstance(response["result"], str):
            block["content"] = response["result"]
        else:
            block["content"] = json.dumps(response if response is not None else {}, ensure_ascii=False)
        return block


def _inline(inline: Any, path: str) -> dict[str, Any]:
    if not isinstance(inline, dict) or not isinstance(inline.get("mimeType"), str):
        raise _bad(f"{path}.mimeType", "must be a string")
    mime = inline["mimeType"].lower()
    data = std_base64(str(inline.get("data") or ""))
    if mime.startswith("image/"):
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if mime == "application/pdf":
        return {"type": "document", "source": {"type": "base64", "media_type": mime, "data": data}}
    if mime.startswith("text/"):
        try:
            text = base64.b64decode(data).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _bad(f"{path}.data", "must be UTF-8 text in base64") from None
        return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    raise _bad(f"{path}.mimeType", f"{mime} input is not supported by Anthropic upstreams")


def _file(file: Any, path: str) -> dict[str, Any]:
    uri = file.get("fileUri") if isinstance(file, dict) else None
    if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
        raise _bad(f"{path}.fileUri", "only http(s) URLs can be sent to Anthropic upstreams")
    mime = str(file.get("mimeType") or "").lower()
    if mime == "application/pdf":
        return {"type": "document", "source": {"type": "url", "url": uri}}
    return {"type": "image", "source": {"type": "url", "url": uri}}


def std_base64(data: str) -> str:
    """Anthropic takes only the standard, padded alphabet; Gemini also URL-safe, unpadded."""
    data = data.replace("-", "+").replace("_", "/")
    return data + "=" * (-len(data) % 4)


def _config(config: dict[str, Any], body: dict[str, Any]) -> None:
    for key, value in config.items():
        if value is None:
            continue
        if key in _CONFIG_SIMPLE:
            body[_CONFIG_SIMPLE[key]] = value
        elif key not in _CONFIG_IGNORED:
            raise _unsupported(f"generationConfig.{key}")
    path = "generationConfig"
    if config.get("candidateCount", 1) != 1:
        raise _bad(f"{path}.candidateCount", "Anthropic upstreams give exactly one candidate")
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = schema_to_json_schema(config["responseSchema"])
    if schema is not None:
        if config.get("responseMimeType") != "application/json":
            raise _bad(f"{path}.responseMimeType", "must be application/json with a response schema")
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif config.get("responseMimeType") not in (None, "", "text/plain"):
        raise _bad(f"{path}.responseMimeType", "JSON output needs a response schema on Anthropic upstreams")
    if any(m not in ("TEXT", "MODALITY_UNSPECIFIED") for m in config.get("responseModalities") or ()):
        raise _bad(f"{path}.responseModalities", "Anthropic upstreams produce only TEXT")
    temperature = config.get("temperature")
    if temperature is not None and temperature > 1:
        raise _bad(f"{path}.temperature", "must be at most 1 for Anthropic upstreams")
    thinking = config.get("thinkingConfig")
    if isinstance(thinking, dict):
        budget = thinking.get("thinkingBudget")
        if isinstance(budget, int) and budget > 0:
            body["thinking"] = {"type": "enabled", "budget_tokens": max(MIN_THINKING_BUDGET, budget)}
        elif budget == -1 or (budget is None and thinking.get("thinkingLevel")):
            body["thinking"] = {"type": "adaptive"}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("tools", "must be an array")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad(f"tools[{i}]", "must be an object")
        for key, value in tool.items():
            if key != "functionDeclarations":
                raise _unsupported(f"tools[{i}].{key}")
            for j, decl in enumerate(value or ()):
                out.append(_declaration(decl, f"tools[{i}].functionDeclarations[{j}]"))
    return out


def _declaration(decl: Any, path: str) -> dict[str, Any]:
    if not isinstance(decl, dict) or not isinstance(decl.get("name"), str):
        raise _bad(f"{path}.name", "must be a string")
    schema = decl.get("parametersJsonSchema")
    if schema is None and decl.get("parameters") is not None:
        schema = schema_to_json_schema(decl["parameters"])
    tool: dict[str, Any] = {"name": decl["name"], "input_schema": schema or _EMPTY_SCHEMA}
    if isinstance(decl.get("description"), str):
        tool["description"] = decl["description"]
    return tool


def _tool_choice(tool_config: Any) -> dict[str, Any] | None:
    fcc = tool_config.get("functionCallingConfig") if isinstance(tool_config, dict) else None
    if not isinstance(fcc, dict):
        return None
    mode = fcc.get("mode")
    names = fcc.get("allowedFunctionNames") or []
    if mode == "NONE":
        return {"type": "none"}
    if mode == "ANY":
        if len(names) == 1:
            return {"type": "tool", "name": names[0]}
        if names:
            raise _bad(
                "toolConfig.functionCallingConfig.allowedFunctionNames",
                "Anthropic upstreams can force one named tool or any tool, not a set",
            )
        return {"type": "any"}
    if mode in ("AUTO", "VALIDATED"):
        return {"type": "auto"}
    return None


def _check_safety(settings: Any) -> None:
    if settings is None:
        return
    if not isinstance(settings, list):
        raise _bad("safetySettings", "must be an array")
    for i, setting in enumerate(settings):
        threshold = setting.get("threshold") if isinstance(setting, dict) else None
        if threshold not in _SAFETY_OFF:
            raise _bad(
                f"safetySettings[{i}].threshold",
                "only BLOCK_NONE or OFF can be honoured by Anthropic upstreams",
            )

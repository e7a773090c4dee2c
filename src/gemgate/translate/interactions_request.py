"""Interactions API requests -> the canonical Gemini request.

An interaction's ``input`` is a string, one content block, a list of content blocks (one
user turn) or a list of steps (``user_input``, ``model_output``, ``thought``,
``function_call``, ``function_result``); :func:`input_steps` gives it as steps. A stored
conversation is kept as steps too, so a request naming a ``previous_interaction_id`` is
its history's steps followed by its own input: :func:`steps_to_contents` makes Gemini
``contents`` of them. Errors name the field (``input[2].content[0].mime_type``).
"""

from __future__ import annotations

from typing import Any

from gemgate.errors import InvalidArgument

INTERACTIONS = "gemini.interactions"  # the protocol's name on canonical requests and replies

STEP_TYPES = frozenset(
    {"user_input", "model_output", "thought", "function_call", "function_result",
     "code_execution_call", "code_execution_result", "url_context_call", "url_context_result",
     "google_search_call", "google_search_result", "mcp_server_tool_call",
     "mcp_server_tool_result", "file_search_call", "file_search_result", "google_maps_call",
     "google_maps_result"}
)
CONTENT_TYPES = frozenset({"text", "image", "audio", "video", "document"})
# Steps the gateway can translate for a non-Google channel.
TRANSLATED_STEPS = frozenset({"user_input", "model_output", "thought", "function_call", "function_result"})

# Top-level fields of CreateInteraction, and which of them only a Google channel honours.
FIELDS = frozenset(
    {"model", "agent", "input", "system_instruction", "tools", "generation_config", "stream",
     "background", "previous_interaction_id", "store", "response_format", "response_mime_type",
     "response_modalities", "safety_settings", "service_tier", "cached_content", "labels",
     "continuation_token", "environment", "webhook_config", "agent_config"}
)
GOOGLE_ONLY = frozenset(
    {"agent", "agent_config", "environment", "webhook_config", "continuation_token", "cached_content"}
)
TOOL_NAMES = {"google_search": "googleSearch", "code_execution": "codeExecution", "url_context": "urlContext"}
THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH", "xhigh": "HIGH"}
TOOL_CHOICE = {"auto": "AUTO", "any": "ANY", "none": "NONE", "validated": "VALIDATED"}


class Untranslatable(InvalidArgument):
    """A field only a channel speaking the Interactions API (Google's) can honour."""


def _bad(path: str, what: str) -> InvalidArgument:
    return InvalidArgument.field(path, what)


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "must be an object")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(path, "must be a list")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, "must be a string")
    return value


def check_bool(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(name, "must be a boolean")
    return value


# --- input ------------------------------------------------------------------------------


def _is_content(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") not in STEP_TYPES and "content" not in value


def input_steps(value: Any, path: str = "input") -> list[dict[str, Any]]:
    """The input as a list of steps (checked: each a known step or content type)."""
    if isinstance(value, str):
        return [{"type": "user_input", "content": [{"type": "text", "text": value}]}]
    if isinstance(value, dict):
        value = [value]
    items = _list(value, path)
    if not items:
        raise _bad(path, "must not be empty")
    if all(_is_content(item) for item in items):
        for i, item in enumerate(items):
            _check_content(item, f"{path}[{i}]")
        return [{"type": "user_input", "content": list(items)}]
    for i, item in enumerate(items):
        step = _obj(item, f"{path}[{i}]")
        kind = step.get("type")
        if kind not in STEP_TYPES:
            raise _bad(f"{path}[{i}].type", f"unknown step type {kind!r}")
        if kind in ("user_input", "model_output"):
            for j, content in enumerate(_list(step.get("content") or [], f"{path}[{i}].content")):
                _check_content(_obj(content, f"{path}[{i}].content[{j}]"), f"{path}[{i}].content[{j}]")
        elif kind == "function_call":
            _str(step.get("name"), f"{path}[{i}].name")
            if not isinstance(step.get("arguments", {}), dict):
                raise _bad(f"{path}[{i}].arguments", "must be an object")
        elif kind == "function_result":
            _str(step.get("call_id"), f"{path}[{i}].call_id")
            if "result" not in step:
                raise _bad(f"{path}[{i}].result", "is required")
    return list(items)


def _check_content(content: dict[str, Any], path: str) -> None:
    kind = content.get("type", "text" if "text" in content else None)
    if kind not in CONTENT_TYPES:
        raise _bad(f"{path}.type", f"unknown content type {kind!r}")
    if kind == "text":
        _str(content.get("text"), f"{path}.text")
        return
    if content.get("data") is None and content.get("uri") is None:
        raise _bad(path, f"a {kind} needs data or uri")
    if content.get("data") is not None:
        _str(content.get("data"), f"{path}.data")
        _str(content.get("mime_type"), f"{path}.mime_type")


# --- steps -> contents ----------------------------------------------------------------------


def _part(content: dict[str, Any]) -> dict[str, Any]:
    if content.get("type", "text") == "text":
        return {"text": content.get("text", "")}
    if content.get("data") is not None:
        return {"inlineData": {"mimeType": content.get("mime_type"), "data": content["data"]}}
    part: dict[str, Any] = {"fileData": {"fileUri": content.get("uri")}}
    if content.get("mime_type"):
        part["fileData"]["mimeType"] = content["mime_type"]
    return part


def _summary_text(step: dict[str, Any]) -> str:
    return "".join(
        str(s.get("text", "")) for s in step.get("summary") or () if isinstance(s, dict) and s.get("type") == "text"
    )


def steps_to_contents(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gemini ``contents``: user input and function results as the user's turns, the model's
    output, thoughts and calls as its own; a thought's signature goes on the part after it."""
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    signature: str | None = None

    def add(role: str, part: dict[str, Any]) -> None:
        nonlocal signature
        if signature is not None and role == "model":
            part = {**part, "thoughtSignature": signature}
            signature = None
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].append(part)
        else:
            contents.append({"role": role, "parts": [part]})

    for i, step in enumerate(steps):
        kind = step.get("type")
        if kind == "user_input":
            for content in step.get("content") or ():
                add("user", _part(content))
        elif kind == "model_output":
            for content in step.get("content") or ():
                add("model", _part(content))
        elif kind == "thought":
            text = _summary_text(step)
            if text:
                add("model", {"text": text, "thought": True})
            if step.get("signature"):
                signature = str(step["signature"])
        elif kind == "function_call":
            call_id = str(step.get("id") or f"call_{i}")
            names[call_id] = str(step.get("name"))
            add("model", {"functionCall": {"id": call_id, "name": step.get("name"), "args": step.get("arguments") or {}}})
        elif kind == "function_result":
            call_id = str(step.get("call_id"))
            result = step.get("result")
            response = result if isinstance(result, dict) else {"result": result}
            name = step.get("name") or names.get(call_id) or "function"
            add("user", {"functionResponse": {"id": call_id, "name": name, "response": response}})
        else:
            raise Untranslatable(f"Steps of type {kind} can only be served by a Google channel.")
    return contents


# --- the rest of the request --------------------------------------------------------------


def _tools(tools: list[Any]) -> tuple[list[dict[str, Any]], bool]:
    """Gemini tools, and whether any is a Google built-in tool."""
    declarations: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    builtin = False
    for i, tool in enumerate(tools):
        tool = _obj(tool, f"tools[{i}]")
        kind = tool.get("type")
        if kind == "function":
            decl: dict[str, Any] = {"name": _str(tool.get("name"), f"tools[{i}].name")}
            if tool.get("description") is not None:
                decl["description"] = _str(tool["description"], f"tools[{i}].description")
            if tool.get("parameters") is not None:
                decl["parametersJsonSchema"] = _obj(tool["parameters"], f"tools[{i}].parameters")
            declarations.append(decl)
        elif kind in TOOL_NAMES:
            out.append({TOOL_NAMES[kind]: {}})
            builtin = True
        else:
            raise Untranslatable(f"Tools of type {kind} can only be served by a Google channel.")
    if declarations:
        out.insert(0, {"functionDeclarations": declarations})
    return out, builtin


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE:
            raise _bad("generation_config.tool_choice", f"unknown mode {choice!r}")
        return {"mode": TOOL_CHOICE[choice]}
    allowed = _obj(_obj(choice, "generation_config.tool_choice").get("allowed_tools"),
                   "generation_config.tool_choice.allowed_tools")
    config: dict[str, Any] = {"mode": TOOL_CHOICE.get(str(allowed.get("mode") or "any"), "ANY")}
    if allowed.get("tools"):
        config["allowedFunctionNames"] = [str(t) for t in allowed["tools"]]
    return config


def _generation_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    out: dict[str, Any] = {}
    for name, camel in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
                        ("max_output_tokens", "maxOutputTokens"), ("stop_sequences", "stopSequences")):
        if cfg.get(name) is not None:
            out[camel] = cfg[name]
    thinking: dict[str, Any] = {}
    level = cfg.get("thinking_level")
    if level is not None:
        if level not in THINKING_LEVELS:
            raise _bad("generation_config.thinking_level", f"unknown level {level!r}")
        thinking["thinkingLevel"] = THINKING_LEVELS[level]
    summaries = cfg.get("thinking_summaries")
    if summaries is not None:
        thinking["includeThoughts"] = summaries == "auto"
    if thinking:
        out["thinkingConfig"] = thinking
    tool_config = None
    if cfg.get("tool_choice") is not None:
        tool_config = {"functionCallingConfig": _tool_choice(cfg["tool_choice"])}
    for name in cfg:
        if name not in ("temperature", "top_p", "seed", "max_output_tokens", "stop_sequences",
                        "thinking_level", "thinking_summaries", "tool_choice"):
            raise Untranslatable(f"generation_config.{name} can only be served by a Google channel.")
    return out, tool_config


def to_canonical(data: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The canonical request for ``data`` (a CreateInteraction body) whose conversation is
    ``steps``; raises :class:`Untranslatable` for what only Google can serve."""
    for name in data:
        if name in GOOGLE_ONLY and data[name] is not None:
            raise Untranslatable(f"{name} can only be served by a Google channel.")
    request: dict[str, Any] = {"contents": steps_to_contents(steps)}
    system = data.get("system_instruction")
    if system is not None:
        request["systemInstruction"] = {"parts": [{"text": _str(system, "system_instruction")}]}
    if data.get("tools"):
        tools, builtin = _tools(_list(data["tools"], "tools"))
        request["tools"] = tools
        if builtin:
            raise Untranslatable("Google's built-in tools can only be served by a Google channel.")
    config: dict[str, Any] = {}
    if data.get("generation_config") is not None:
        config, tool_config = _generation_config(_obj(data["generation_config"], "generation_config"))
        if tool_config is not None:
            request["toolConfig"] = tool_config
    modalities = data.get("response_modalities")
    if modalities is not None:
        config["responseModalities"] = [str(m).upper() for m in _list(modalities, "response_modalities")]
    mime = data.get("response_mime_type")
    if mime is not None:
        config["responseMimeType"] = _str(mime, "response_mime_type")
    fmt = data.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or "type" in fmt:
            raise Untranslatable("This response_format can only be served by a Google channel.")
        config["responseJsonSchema"] = fmt
        config.setdefault("responseMimeType", "application/json")
    if config:
        request["generationConfig"] = config
    if data.get("safety_settings") is not None:
        request["safetySettings"] = [
            {k: str(v).upper() for k, v in _obj(s, f"safety_settings[{i}]").items()}
            for i, s in enumerate(_list(data["safety_settings"], "safety_settings"))
        ]
    if data.get("service_tier") is not None:
        request["serviceTier"] = _str(data["service_tier"], "service_tier")
    return request


def check_fields(data: dict[str, Any]) -> None:
    for name in data:
        if name not in FIELDS:
            raise _bad(name, f'Unknown name "{name}": Cannot find field.')
    if data.get("agent") is not None:
        raise _bad("agent", "agents are not served by this gateway; name a model")
    _str(data.get("model"), "model")
    for name in ("stream", "background", "store"):
        check_bool(data, name)
    if data.get("previous_interaction_id") is not None:
        _str(data["previous_interaction_id"], "previous_interaction_id")
    if data.get("input") is None and data.get("previous_interaction_id") is None:
        raise _bad("input", "is required")

"""OpenAI chat.completions request -> Gemini GenerateContentRequest (the OpenAI door's side).

Everything that changes the answer is either translated or rejected with an
:class:`InvalidArgument` naming the OpenAI field; nothing is silently dropped.
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import urlsplit

from gemgate.errors import InvalidArgument
from gemgate.translate.openai_common import parse_data_uri
from gemgate.translate.openai_google import apply_google, google_block, split_tagged
from gemgate.translate.openai_ids import split_call_id
from gemgate.translate.openai_params import HANDLERS
from gemgate.types.validate import loads_strict

# Accepted and deliberately not translated: they do not change the answer.
_ACCEPTED = frozenset(
    {
        "user",
        "metadata",
        "store",
        "stream",
        "stream_options",
        "parallel_tool_calls",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
    }
)
_GOOGLE = frozenset({"google", "extra_body"})  # Google's extension block (openai_google)
_WHY_NOT = {
    "logit_bias": "logit_bias is not supported",
    "audio": "audio output is not supported",
    "functions": "the legacy 'functions' field is not supported; use 'tools'",
    "function_call": "the legacy 'function_call' field is not supported; use 'tool_choice'",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web_search_options is not supported",
    "verbosity": "verbosity is not supported",
}


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def chat_to_gemini(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """An OpenAI chat.completions request -> (model, Gemini GenerateContentRequest)."""
    if not isinstance(body, dict):
        raise _bad("", "the request body must be a JSON object")
    for key, value in body.items():
        if key in _WHY_NOT and value is not None:
            raise _bad(key, _WHY_NOT[key])
        if key not in HANDLERS and key not in _ACCEPTED and key not in _WHY_NOT and key not in _GOOGLE:
            raise _bad(key, f"unknown field '{key}' is not supported")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "must be a non-empty string")
    _check_accepted(body)

    request: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for key, handler in HANDLERS.items():
        value = body.get(key)
        if value is not None and handler is not None:
            handler(value, config, request)
    if "max_completion_tokens" in body and body["max_completion_tokens"] is not None:
        config["maxOutputTokens"] = body["max_completion_tokens"]
    marker = None
    google = google_block(body)
    if google is not None:
        effort = body.get("reasoning_effort") is not None
        marker = apply_google(*google, request, config, effort=effort)

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "must be a non-empty array")
    system, contents = _messages(messages, marker)
    head: dict[str, Any] = {"contents": contents}
    if system:
        head["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    request = {**head, **request}
    if config:
        request["generationConfig"] = config
    return model, request


def thought_tag(body: dict[str, Any]) -> str | None:
    """The ``thought_tag_marker`` of a chat request's Google extension block, if any."""
    google = google_block(body) if isinstance(body, dict) else None
    marker = google[1].get("thought_tag_marker", google[1].get("thoughtTagMarker")) if google else None
    return marker if isinstance(marker, str) and marker else None


def _check_accepted(body: dict[str, Any]) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "must be a boolean")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise _bad("stream_options", "must be an object")
    tier = body.get("service_tier")
    if tier not in (None, "auto", "default"):
        raise _bad("service_tier", f"service tier {tier!r} is not supported")


# ---------------------------------------------------------------- messages


def _messages(messages: list[Any], marker: str | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    tool_turn: dict[str, Any] | None = None  # the user content collecting consecutive tool results
    for i, msg in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(path, "must be an object")
        role = msg.get("role")
        if role == "tool":
            part = _tool_result(msg, path, call_names)
            if tool_turn is None or contents[-1] is not tool_turn:
                tool_turn = {"role": "user", "parts": []}
                contents.append(tool_turn)
            tool_turn["parts"].append(part)
            continue
        if role in ("system", "developer"):
            system.extend(_texts(msg.get("content"), f"{path}.content", allow_empty=True))
        elif role == "user":
            contents.append({"role": "user", "parts": _user_parts(msg.get("content"), path)})
        elif role == "assistant":
            contents.append({"role": "model", "parts": _assistant_parts(msg, path, call_names, marker)})
        elif role == "function":
            raise _bad(f"{path}.role", "the legacy 'function' role is not supported; use 'tool'")
        else:
            raise _bad(
                f"{path}.role",
                f"unknown role {role!r}; expected system, developer, user, assistant or tool",
            )
    if not contents:
        raise _bad("messages", "must contain at least one user, assistant or tool message")
    return system, contents


def _texts(content: Any, path: str, *, allow_empty: bool = False) -> list[str]:
    """Content that may only hold text: a string or a list of text parts."""
    if isinstance(content, str):
        return [content]
    if content is None and allow_empty:
        return []
    if not isinstance(content, list):
        raise _bad(path, "must be a string or an array of text parts")
    out: list[str] = []
    for j, part in enumerate(content):
        ppath = f"{path}[{j}]"
        if not isinstance(part, dict):
            raise _bad(ppath, "must be an object")
        if part.get("type") != "text":
            raise _bad(
                f"{ppath}.type", f"only text parts are allowed here, got {part.get('type')!r}"
            )
        out.append(_text_of(part, ppath))
    return out


def _text_of(part: dict[str, Any], path: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _bad(f"{path}.text", "must be a string")
    return text


def _user_parts(content: Any, path: str) -> list[dict[str, Any]]:
    cpath = f"{path}.content"
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list) or not content:
        raise _bad(cpath, "must be a string or a non-empty array of content parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        ppath = f"{cpath}[{j}]"
        if not isinstance(part, dict):
            raise _bad(ppath, "must be an object")
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": _text_of(part, ppath)})
        elif kind == "image_url":
            parts.append(_image_part(part.get("image_url"), f"{ppath}.image_url"))
        elif kind == "input_audio":
            parts.append(_audio_part(part.get("input_audio"), f"{ppath}.input_audio"))
        elif kind == "file":
            parts.append(_file_part(part.get("file"), f"{ppath}.file"))
        else:
            raise _bad(f"{ppath}.type", f"content part type {kind!r} is not supported")
    return parts


def _image_part(image: Any, path: str) -> dict[str, Any]:
    if isinstance(image, str):  # some clients send the URL directly
        image = {"url": image}
    if not isinstance(image, dict):
        raise _bad(path, "must be an object with a url")
    url = image.get("url")
    if not isinstance(url, str) or not url:
        raise _bad(f"{path}.url", "must be a non-empty string")
    detail = image.get("detail")
    if detail not in (None, "auto", "low", "high"):
        raise _bad(f"{path}.detail", "must be auto, low or high")
    if url.startswith("data:"):
        parsed = parse_data_uri(url)
        if parsed is None:
            raise _bad(f"{path}.url", "is not a valid data URI")
        return {"inlineData": {"mimeType": parsed[0], "data": parsed[1]}}
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise _bad(f"{path}.url", "must be a data: URI or an http(s) URL")
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    mime = guessed if guessed and guessed.startswith("image/") else "image/*"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _audio_part(audio: Any, path: str) -> dict[str, Any]:
    if not isinstance(audio, dict):
        raise _bad(path, "must be an object with data and format")
    data = audio.get("data")
    fmt = audio.get("format")
    if not isinstance(data, str):
        raise _bad(f"{path}.data", "must be a base64 string")
    if not isinstance(fmt, str) or not fmt:
        raise _bad(f"{path}.format", "must be a string such as 'wav' or 'mp3'")
    return {"inlineData": {"mimeType": f"audio/{fmt.lower()}", "data": data}}


def _file_part(file: Any, path: str) -> dict[str, Any]:
    if not isinstance(file, dict):
        raise _bad(path, "must be an object")
    if file.get("file_id") is not None:
        raise _bad(f"{path}.file_id", "uploaded file ids are not supported; send file_data")
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise _bad(f"{path}.file_data", "must be a data URI")
    parsed = parse_data_uri(data)
    if parsed is None:
        filename = file.get("filename")
        guessed = mimetypes.guess_type(filename)[0] if isinstance(filename, str) else None
        if not guessed:
            raise _bad(f"{path}.file_data", "must be a data URI (data:<mime>;base64,...)")
        parsed = (guessed, data)
    return {"inlineData": {"mimeType": parsed[0], "data": parsed[1]}}


def _assistant_parts(
    msg: dict[str, Any], path: str, call_names: dict[str, str], marker: str | None = None
) -> list[dict[str, Any]]:
    if msg.get("audio") is not None:
        raise _bad(f"{path}.audio", "audio in assistant messages is not supported")
    if msg.get("function_call") is not None:
        raise _bad(f"{path}.function_call", "the legacy 'function_call' is not supported")
    parts: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content", msg.get("reasoning"))
    if reasoning is not None:
        if not isinstance(reasoning, str):
            raise _bad(f"{path}.reasoning_content", "must be a string")
        if reasoning:
            parts.append({"text": reasoning, "thought": True})
    content = msg.get("content")
    tagged = split_tagged(content, marker) if marker and isinstance(content, str) else None
    if tagged is not None:  # the thought came back inside the content, as it was sent
        if tagged[0]:
            parts.append({"text": tagged[0], "thought": True})
        content = tagged[1]
    if isinstance(content, list):
        for j, part in enumerate(content):
            ppath = f"{path}.content[{j}]"
            if not isinstance(part, dict):
                raise _bad(ppath, "must be an object")
            if part.get("type") == "text":
                parts.append({"text": _text_of(part, ppath)})
            elif part.get("type") == "refusal":
                refusal = part.get("refusal")
                if not isinstance(refusal, str):
                    raise _bad(f"{ppath}.refusal", "must be a string")
                parts.append({"text": refusal})
            else:
                raise _bad(f"{ppath}.type", "assistant content parts must be text or refusal")
    elif isinstance(content, str):
        if content:
            parts.append({"text": content})
    elif content is not None:
        raise _bad(f"{path}.content", "must be a string, an array of parts or null")
    refusal = msg.get("refusal")
    if isinstance(refusal, str) and refusal and content is None:
        parts.append({"text": refusal})
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise _bad(f"{path}.tool_calls", "must be an array")
        for j, call in enumerate(calls):
            parts.append(_function_call(call, f"{path}.tool_calls[{j}]", call_names))
    if not parts:
        parts.append({"text": content if isinstance(content, str) else ""})
    return parts


def _function_call(call: Any, path: str, call_names: dict[str, str]) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise _bad(path, "must be an object")
    if call.get("type", "function") != "function":
        raise _bad(f"{path}.type", "only function tool calls are supported")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{path}.id", "must be a non-empty string")
    fn = call.get("function")
    if not isinstance(fn, dict):
        raise _bad(f"{path}.function", "must be an object")
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{path}.function.name", "must be a non-empty string")
    arguments = fn.get("arguments")
    if isinstance(arguments, dict):
        args = arguments
    elif isinstance(arguments, str):
        where = f"{path}.function.arguments"
        try:
            args = loads_strict(arguments, where) if arguments.strip() else {}
        except ValueError as exc:
            raise _bad(where, f"is not valid JSON: {exc}") from None
        if not isinstance(args, dict):
            raise _bad(f"{path}.function.arguments", "must encode a JSON object")
    elif arguments is None:
        args = {}
    else:
        raise _bad(f"{path}.function.arguments", "must be a JSON string")
    call_names[call_id] = name
    own_id, carried = split_call_id(call_id)
    part: dict[str, Any] = {"functionCall": {"id": own_id, "name": name, "args": args}}
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    elif carried:
        part["thoughtSignature"] = carried
    return part


def _tool_result(msg: dict[str, Any], path: str, call_names: dict[str, str]) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{path}.tool_call_id", "must be a non-empty string")
    name = call_names.get(call_id)
    if name is None:
        raise _bad(f"{path}.tool_call_id", f"'{call_id}' does not match an earlier tool call")
    text = "".join(_texts(msg.get("content"), f"{path}.content"))
    response: dict[str, Any] = {"result": text}
    if text.lstrip().startswith("{"):
        try:
            parsed = loads_strict(text, f"{path}.content")
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            response = parsed
    own_id, _signature = split_call_id(call_id)
    return {"functionResponse": {"id": own_id, "name": name, "response": response}}

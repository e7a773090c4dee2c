"""Anthropic Messages request -> Gemini GenerateContentRequest (the Anthropic door's side).

Malformed input is an :class:`InvalidArgument` naming the Anthropic field
(``messages[2].content[0].source.data``). What is well formed but only Anthropic itself can
serve (server tools, MCP servers, containers, more than five stop sequences, file ids)
raises :class:`Untranslatable`: the door then admits the request on a lenient reading (the
untranslatable pieces counted as text) and only a channel that takes the original bytes
may serve it. Top-level fields that cannot change what the answer says (``metadata``,
``service_tier``, ``context_management``, ``cache_control``, ...) and fields unknown to this
translation are accepted and left to the Anthropic upstreams that receive the bytes.
``cache_control`` markers on blocks are accepted anywhere.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any
from urllib.parse import urlsplit

from gemgate.errors import InvalidArgument
from gemgate.translate.anthropic_common import is_base64, valid_signature
from gemgate.translate.anthropic_params import generation_config, tool_choice

# Fields that change the answer and that only an Anthropic upstream can honour.
_ANTHROPIC_ONLY = frozenset({"container", "mcp_servers"})

Part = dict[str, Any]


class Untranslatable(InvalidArgument):
    """Well formed, but only an Anthropic upstream can serve it."""


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def _only_anthropic(path: str, what: str) -> Untranslatable:
    err = Untranslatable.field(path, f"{what} can be served only by an Anthropic upstream")
    assert isinstance(err, Untranslatable)
    return err


def messages_to_gemini(
    body: dict[str, Any], *, count_only: bool = False, lenient: bool = False
) -> dict[str, Any]:
    """An Anthropic Messages request -> a Gemini GenerateContentRequest.

    ``count_only``: a count_tokens body (no ``max_tokens``). ``lenient``: what only Anthropic
    can serve becomes text (for admission's bound) instead of raising :class:`Untranslatable`.
    """
    return _Reader(lenient).request(body, count_only)


class _Reader:
    __slots__ = ("calls", "lenient")

    def __init__(self, lenient: bool) -> None:
        self.lenient = lenient
        self.calls: dict[str, str] = {}  # tool_use id -> tool name

    def _refuse(self, path: str, what: str) -> None:
        if not self.lenient:
            raise _only_anthropic(path, what)

    # ------------------------------------------------------------ top level

    def request(self, body: dict[str, Any], count_only: bool) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("model", "must be a non-empty string")
        for key in _ANTHROPIC_ONLY:
            if body.get(key) is not None:
                self._refuse(key, f"'{key}'")
        system = self._system(body.get("system"), "system")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad("messages", "must be a non-empty array")
        contents = self._messages(messages, system)
        if not contents:
            raise _bad("messages", "must contain at least one user or assistant message")
        request: dict[str, Any] = {"contents": contents}
        if system:
            request["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        config = generation_config(body, count_only=count_only, refuse=self._refuse)
        if config:
            request["generationConfig"] = config
        tools = self._tools(body.get("tools"))
        if tools:
            request["tools"] = [{"functionDeclarations": tools}]
        choice = body.get("tool_choice")
        if choice is not None:
            request["toolConfig"] = {"functionCallingConfig": tool_choice(choice)}
        return request

    # ------------------------------------------------------------ system and messages

    def _system(self, system: Any, path: str) -> list[str]:
        if system is None:
            return []
        if isinstance(system, str):
            return [system] if system else []
        if not isinstance(system, list):
            raise _bad(path, "must be a string or an array of text blocks")
        texts: list[str] = []
        for j, block in enumerate(system):
            bpath = f"{path}[{j}]"
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _bad(bpath, "must be a text block")
            texts.append(_text(block, bpath))
        return texts

    def _messages(self, messages: list[Any], system: list[str]) -> list[dict[str, Any]]:
        contents: list[dict[str, Any]] = []
        for i, msg in enumerate(messages):
            path = f"messages[{i}]"
            if not isinstance(msg, dict):
                raise _bad(path, "must be an object")
            role = msg.get("role")
            if role == "system":  # some agents send mid-conversation instructions so
                system.extend(self._system(msg.get("content"), f"{path}.content"))
                continue
            if role not in ("user", "assistant"):
                raise _bad(f"{path}.role", f"must be 'user' or 'assistant', got {role!r}")
            parts = self._content(msg.get("content"), f"{path}.content", role)
            if parts:
                contents.append({"role": "user" if role == "user" else "model", "parts": parts})
        return contents

    def _content(self, content: Any, path: str, role: str) -> list[Part]:
        if isinstance(content, str):
            return [{"text": content}]
        if not isinstance(content, list):
            raise _bad(path, "must be a string or an array of content blocks")
        parts: list[Part] = []
        signature: str | None = None  # from an empty thinking block, for the next part
        for j, block in enumerate(content):
            bpath = f"{path}[{j}]"
            if not isinstance(block, dict):
                raise _bad(bpath, "must be an object")
            kind = block.get("type")
            if kind == "thinking":
                text = block.get("thinking")
                if not isinstance(text, str):
                    raise _bad(f"{bpath}.thinking", "must be a string")
                sig = valid_signature(block.get("signature"))
                if not text:
                    signature = sig or signature
                    continue
                thought: Part = {"text": text, "thought": True}
                if sig:
                    thought["thoughtSignature"] = sig
                parts.append(thought)
                continue
            if kind == "redacted_thinking":
                continue  # encrypted for Anthropic alone; nothing another model can read
            new = self._block(block, kind, bpath, role)
            if signature and new:
                new[0]["thoughtSignature"] = signature
                signature = None
            parts.extend(new)
        if signature:  # the signature of an empty closing part (as Gemini 3 sends one)
            parts.append({"text": "", "thoughtSignature": signature})
        return parts

    def _block(self, block: dict[str, Any], kind: Any, path: str, role: str) -> list[Part]:
        if kind == "text":
            return [{"text": _text(block, path)}]
        if kind == "image":
            return [self._image(block.get("source"), f"{path}.source")]
        if kind == "document":
            return self._document(block.get("source"), f"{path}.source")
        if kind == "search_result":
            return [{"text": _search_result(block, path)}]
        if kind == "tool_use" and role == "assistant":
            return [self._tool_use(block, path)]
        if kind == "tool_result" and role == "user":
            return self._tool_result(block, path)
        if kind in ("tool_use", "tool_result"):
            raise _bad(f"{path}.type", f"a {kind} block cannot be in a {role} message")
        if isinstance(kind, str) and kind:
            self._refuse(f"{path}.type", f"a {kind!r} block")
            return [{"text": json.dumps(block, ensure_ascii=False)}]
        raise _bad(f"{path}.type", "must name the content block type")

    def _image(self, source: Any, path: str) -> Part:
        if not isinstance(source, dict):
            raise _bad(path, "must be an object")
        kind = source.get("type")
        if kind == "base64":
            return {"inlineData": {"mimeType": _media_type(source, path), "data": _data(source, path)}}
        if kind == "url":
            url = _url(source, path)
            guessed, _ = mimetypes.guess_type(urlsplit(url).path)
            mime = guessed if guessed and guessed.startswith("image/") else "image/*"
            return {"fileData": {"mimeType": mime, "fileUri": url}}
        if kind == "file":
            self._refuse(f"{path}.file_id", "an uploaded file id")
            return {"text": f"[file {source.get('file_id')}]"}
        raise _bad(f"{path}.type", "must be base64, url or file")

    def _document(self, source: Any, path: str) -> list[Part]:
        if not isinstance(source, dict):
            raise _bad(path, "must be an object")
        kind = source.get("type")
        if kind == "base64":
            return [{"inlineData": {"mimeType": _media_type(source, path), "data": _data(source, path)}}]
        if kind == "text":
            data = source.get("data")
            if not isinstance(data, str):
                raise _bad(f"{path}.data", "must be a string")
            return [{"text": data}]
        if kind == "url":
            return [{"fileData": {"mimeType": "application/pdf", "fileUri": _url(source, path)}}]
        if kind == "content":
            inner = source.get("content")
            if isinstance(inner, str):
                return [{"text": inner}]
            if not isinstance(inner, list):
                raise _bad(f"{path}.content", "must be a string or an array of blocks")
            out: list[Part] = []
            for k, block in enumerate(inner):
                bpath = f"{path}.content[{k}]"
                if not isinstance(block, dict):
                    raise _bad(bpath, "must be an object")
                if block.get("type") == "image":
                    out.append(self._image(block.get("source"), f"{bpath}.source"))
                elif block.get("type") == "text":
                    out.append({"text": _text(block, bpath)})
                else:
                    raise _bad(f"{bpath}.type", "must be text or image")
            return out
        if kind == "file":
            self._refuse(f"{path}.file_id", "an uploaded file id")
            return [{"text": f"[file {source.get('file_id')}]"}]
        raise _bad(f"{path}.type", "must be base64, text, url, content or file")

    # ------------------------------------------------------------ tools

    def _tool_use(self, block: dict[str, Any], path: str) -> Part:
        call_id = block.get("id")
        name = block.get("name")
        args = block.get("input", {})
        if not isinstance(call_id, str) or not call_id:
            raise _bad(f"{path}.id", "must be a non-empty string")
        if not isinstance(name, str) or not name:
            raise _bad(f"{path}.name", "must be a non-empty string")
        if not isinstance(args, dict):
            raise _bad(f"{path}.input", "must be an object")
        self.calls[call_id] = name
        return {"functionCall": {"id": call_id, "name": name, "args": args}}

    def _tool_result(self, block: dict[str, Any], path: str) -> list[Part]:
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise _bad(f"{path}.tool_use_id", "must be a non-empty string")
        name = self.calls.get(call_id)
        if name is None:
            raise _bad(f"{path}.tool_use_id", f"'{call_id}' does not match an earlier tool_use block")
        texts: list[str] = []
        media: list[Part] = []
        content = block.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for k, sub in enumerate(content):
                spath = f"{path}.content[{k}]"
                kind = sub.get("type") if isinstance(sub, dict) else None
                if kind == "text":
                    texts.append(_text(sub, spath))
                elif kind == "image":
                    media.append(self._image(sub.get("source"), f"{spath}.source"))
                elif kind == "document":
                    media.extend(self._document(sub.get("source"), f"{spath}.source"))
                elif kind == "search_result":
                    texts.append(_search_result(sub, spath))
                else:
                    raise _bad(f"{spath}.type", "must be text, image, document or search_result")
        elif content is not None:
            raise _bad(f"{path}.content", "must be a string or an array of blocks")
        is_error = block.get("is_error")
        if is_error is not None and not isinstance(is_error, bool):
            raise _bad(f"{path}.is_error", "must be a boolean")
        text = "\n".join(texts)
        response = {"error": text} if is_error else {"result": text}
        return [{"functionResponse": {"id": call_id, "name": name, "response": response}}, *media]

    def _tools(self, tools: Any) -> list[dict[str, Any]]:
        if tools is None:
            return []
        if not isinstance(tools, list):
            raise _bad("tools", "must be an array")
        decls: list[dict[str, Any]] = []
        for i, tool in enumerate(tools):
            path = f"tools[{i}]"
            if not isinstance(tool, dict):
                raise _bad(path, "must be an object")
            kind = tool.get("type")
            if kind not in (None, "custom"):
                self._refuse(f"{path}.type", f"Anthropic's {kind!r} tool")
                continue
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise _bad(f"{path}.name", "must be a non-empty string")
            decl: dict[str, Any] = {"name": name}
            description = tool.get("description")
            if description is not None:
                if not isinstance(description, str):
                    raise _bad(f"{path}.description", "must be a string")
                decl["description"] = description
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                raise _bad(f"{path}.input_schema", "must be a JSON Schema object")
            decl["parametersJsonSchema"] = schema
            decls.append(decl)
        return decls


# ---------------------------------------------------------------- small fields


def _text(block: dict[str, Any], path: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _bad(f"{path}.text", "must be a string")
    return text


def _search_result(block: dict[str, Any], path: str) -> str:
    content = block.get("content")
    if not isinstance(content, list):
        raise _bad(f"{path}.content", "must be an array of text blocks")
    texts = [_text(b, f"{path}.content[{k}]") for k, b in enumerate(content) if isinstance(b, dict)]
    head = " ".join(str(block.get(k)) for k in ("title", "source") if isinstance(block.get(k), str))
    return "\n".join([head, *texts]) if head else "\n".join(texts)


def _media_type(source: dict[str, Any], path: str) -> str:
    mime = source.get("media_type")
    if not isinstance(mime, str) or "/" not in mime:
        raise _bad(f"{path}.media_type", "must be a media type such as image/png")
    return mime.lower()


def _data(source: dict[str, Any], path: str) -> str:
    data = source.get("data")
    if not is_base64(data):
        raise _bad(f"{path}.data", "must be base64 data")
    return str(data)


def _url(source: dict[str, Any], path: str) -> str:
    url = source.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme.lower() not in ("http", "https"):
        raise _bad(f"{path}.url", "must be an http(s) URL")
    return url

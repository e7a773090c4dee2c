"""OpenAI Responses input items -> Gemini contents (the Responses door's side).

Items are messages (``user``, ``assistant``, ``system``, ``developer``) whose content is a
string or ``input_text`` / ``input_image`` / ``input_file`` / ``output_text`` / ``refusal``
parts, ``function_call`` and ``function_call_output`` items (a call's ``namespace`` flattened
into the name its declaration has, see :mod:`responses_tools`), ``custom_tool_call`` and
its output, ``reasoning`` items, and ``compaction`` items this gateway wrote (their summary
becomes a user turn). Consecutive model-side items (reasoning, assistant
messages, calls) become one ``model`` content, and consecutive call outputs one ``user``
content, as Gemini expects of parallel calls.

Gemini's ``thoughtSignature`` travels in a reasoning item's ``encrypted_content`` (see
:func:`seal`): on the thought itself, or on the part that follows the reasoning item.
A record of a hosted tool's work (``web_search_call``, ...) carries nothing to send and is
skipped; an item type this translation does not know is left out with a warning, so that
an agent's newer history still reaches the model. Malformed input is an
:class:`InvalidArgument` naming the field (``input[3].call_id``).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any
from urllib.parse import urlsplit

from gemgate.errors import InvalidArgument
from gemgate.translate.anthropic_common import valid_signature
from gemgate.translate.openai_common import parse_data_uri
from gemgate.translate.openai_response import parse_arguments
from gemgate.translate.responses_tools import CUSTOM_ARG, gemini_name

Part = dict[str, Any]
Content = dict[str, Any]

SEAL = "gemgate:v1:"  # encrypted_content this gateway wrote: "gemgate:v1:<on>:<signature>"
SUMMARY = "gemgate:compaction:v1:"  # a compaction item's content: the summary, base64
SUMMARY_INTRO = "A summary of the conversation so far (earlier turns were compacted):\n\n"
ON_THOUGHT, ON_NEXT = "thought", "next"
# Records of hosted tools' work: what they found already reached the model as text.
_RECORDS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "computer_call",
    }
)
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def seal(signature: str, on: str) -> str:
    """A thought signature as a reasoning item's ``encrypted_content``."""
    return f"{SEAL}{on}:{signature}"


def seal_summary(summary: str) -> str:
    """A compaction summary as a compaction item's ``encrypted_content``."""
    return SUMMARY + base64.b64encode(summary.encode()).decode()


def unseal_summary(value: Any) -> str | None:
    """The summary in a compaction item this gateway wrote; None for anything else."""
    if not isinstance(value, str) or not value.startswith(SUMMARY):
        return None
    try:
        return base64.b64decode(value[len(SUMMARY) :], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def unseal(value: Any) -> tuple[str, str] | None:
    """(on, signature) from ``encrypted_content`` this gateway wrote; None for anything else
    (another provider's content cannot be sent to Gemini)."""
    if not isinstance(value, str) or not value.startswith(SEAL):
        return None
    on, _, signature = value[len(SEAL) :].partition(":")
    sig = valid_signature(signature)
    if on not in (ON_THOUGHT, ON_NEXT) or sig is None:
        return None
    return on, sig


class InputReader:
    """Reads input items into Gemini contents; ``system`` collects system and developer
    messages, ``warnings`` what was left out, ``call_names`` every call id seen (the
    history's included) so that outputs can name their function."""

    def __init__(self, call_names: dict[str, str] | None = None) -> None:
        self.contents: list[Content] = []
        self.system: list[str] = []
        self.warnings: list[str] = []
        self.call_names: dict[str, str] = dict(call_names or {})
        self._signature: str | None = None  # for the next part of the model turn

    # ------------------------------------------------------------ turns

    def _add(self, role: str, parts: list[Part]) -> None:
        if not parts:
            return
        if role == "model" and self._signature is not None:
            parts[0] = {**parts[0], "thoughtSignature": self._signature}
            self._signature = None
        if role != "model":
            self._flush_signature()
        last = self.contents[-1] if self.contents else None
        if last is not None and last["role"] == role:
            last["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})

    def _flush_signature(self) -> None:
        """A signature with no part after it in its turn: the empty closing part Gemini 3
        sends carried it."""
        if self._signature is not None:
            sig, self._signature = self._signature, None
            self._add("model", [{"text": "", "thoughtSignature": sig}])

    def finish(self) -> list[Content]:
        self._flush_signature()
        return self.contents

    # ------------------------------------------------------------ items

    def read(self, value: Any, path: str = "input") -> None:
        if isinstance(value, str):
            self._add("user", [{"text": value}])
            return
        if not isinstance(value, list):
            raise _bad(path, "must be a string or an array of input items")
        for i, item in enumerate(value):
            self.item(item, f"{path}[{i}]")

    def item(self, item: Any, path: str) -> None:
        if not isinstance(item, dict):
            raise _bad(path, "must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            self._message(item, path)
        elif kind == "function_call":
            self._call(item, path, custom=False)
        elif kind == "custom_tool_call":
            self._call(item, path, custom=True)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self._output(item, path)
        elif kind == "reasoning":
            self._reasoning(item, path)
        elif kind in ("compaction", "compaction_summary"):
            summary = unseal_summary(item.get("encrypted_content"))
            if summary is None:
                self.warnings.append(f"{path}: a compaction item another service wrote cannot be "
                                     "read here and was left out")
            else:
                self._add("user", [{"text": SUMMARY_INTRO + summary}])
        elif kind == "item_reference":
            raise _bad(f"{path}.type", "item references are not supported; send the item itself "
                       "or name its response in previous_response_id")
        elif kind in _RECORDS:
            return
        elif isinstance(kind, str) and kind:
            self.warnings.append(f"{path}: an item of type {kind!r} was left out")
        else:
            raise _bad(f"{path}.type", "must name the item type")

    def _message(self, item: dict[str, Any], path: str) -> None:
        role = item.get("role")
        content = item.get("content")
        if role in ("system", "developer"):
            self.system.extend(self._texts(content, f"{path}.content"))
        elif role == "user":
            self._add("user", self._parts(content, f"{path}.content"))
        elif role == "assistant":
            parts = self._parts(content, f"{path}.content")
            self._add("model", parts or [{"text": ""}])
        else:
            raise _bad(f"{path}.role", f"must be user, assistant, system or developer, got {role!r}")

    def _texts(self, content: Any, path: str) -> list[str]:
        if isinstance(content, str):
            return [content] if content else []
        if not isinstance(content, list):
            raise _bad(path, "must be a string or an array of text parts")
        out: list[str] = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
                raise _bad(f"{path}[{j}]", "must be an input_text part")
            out.append(_text(part, f"{path}[{j}]"))
        return out

    def _parts(self, content: Any, path: str) -> list[Part]:
        if isinstance(content, str):
            return [{"text": content}]
        if not isinstance(content, list):
            raise _bad(path, "must be a string or an array of content parts")
        return [_content_part(part, f"{path}[{j}]") for j, part in enumerate(content)]

    def _call(self, item: dict[str, Any], path: str, *, custom: bool) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _bad(f"{path}.call_id", "must be a non-empty string")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{path}.name", "must be a non-empty string")
        namespace = item.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise _bad(f"{path}.namespace", "must be a string")
        name = gemini_name(name, namespace)  # as the tools were declared to Gemini
        if custom:
            raw = item.get("input")
            if not isinstance(raw, str):
                raise _bad(f"{path}.input", "must be a string")
            args: dict[str, Any] | None = {CUSTOM_ARG: raw}
        else:
            args = parse_arguments(item.get("arguments"))
            if args is None:
                raise _bad(f"{path}.arguments", "must be a JSON object encoded as a string")
        self.call_names[call_id] = name
        self._add("model", [{"functionCall": {"id": call_id, "name": name, "args": args}}])

    def _output(self, item: dict[str, Any], path: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _bad(f"{path}.call_id", "must be a non-empty string")
        name = self.call_names.get(call_id)
        if name is None:
            raise _bad(f"{path}.call_id", f"'{call_id}' does not match an earlier function call")
        output = item.get("output")
        media: list[Part] = []
        if isinstance(output, str):
            text = output
        elif isinstance(output, list):
            texts: list[str] = []
            for j, part in enumerate(output):
                converted = _content_part(part, f"{path}.output[{j}]")
                if "text" in converted:
                    texts.append(converted["text"])
                else:
                    media.append(converted)
            text = "".join(texts)
        else:
            raise _bad(f"{path}.output", "must be a string or an array of content parts")
        response = {"id": call_id, "name": name, "response": {"output": text}}
        self._add("user", [{"functionResponse": response}, *media])

    def _reasoning(self, item: dict[str, Any], path: str) -> None:
        texts: list[str] = []
        for key in ("summary", "content"):
            pieces = item.get(key)
            if pieces is None:
                continue
            if not isinstance(pieces, list):
                raise _bad(f"{path}.{key}", "must be an array")
            for j, piece in enumerate(pieces):
                if not isinstance(piece, dict) or piece.get("type") not in _TEXT_PARTS:
                    raise _bad(f"{path}.{key}[{j}]", "must be a summary_text or reasoning_text part")
                texts.append(_text(piece, f"{path}.{key}[{j}]"))
            if texts:
                break  # the summary, or else the full reasoning text: never both
        sealed = unseal(item.get("encrypted_content"))
        thought: Part = {"text": "\n\n".join(texts), "thought": True}
        if sealed is not None and sealed[0] == ON_THOUGHT:
            thought["thoughtSignature"] = sealed[1]
        if texts or "thoughtSignature" in thought:
            self._add("model", [thought])
        if sealed is not None and sealed[0] == ON_NEXT:
            self._signature = sealed[1]


def _text(part: dict[str, Any], path: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _bad(f"{path}.text", "must be a string")
    return text


def _content_part(part: Any, path: str) -> Part:
    if not isinstance(part, dict):
        raise _bad(path, "must be an object")
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return {"text": _text(part, path)}
    if kind == "refusal":
        refusal = part.get("refusal")
        if not isinstance(refusal, str):
            raise _bad(f"{path}.refusal", "must be a string")
        return {"text": refusal}
    if kind == "input_image":
        return _image(part, path)
    if kind == "input_file":
        return _file(part, path)
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
            raise _bad(f"{path}.input_audio", "must be an object with base64 data and a format")
        fmt = str(audio.get("format") or "wav").lower()
        return {"inlineData": {"mimeType": f"audio/{fmt}", "data": audio["data"]}}
    raise _bad(f"{path}.type", f"content part type {kind!r} is not supported")


def _image(part: dict[str, Any], path: str) -> Part:
    if part.get("file_id") is not None:
        raise _bad(f"{path}.file_id", "uploaded file ids are not supported; send image_url")
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise _bad(f"{path}.image_url", "must be a data: URI or an http(s) URL")
    return _by_url(url, f"{path}.image_url", "image/*")


def _file(part: dict[str, Any], path: str) -> Part:
    if part.get("file_id") is not None:
        raise _bad(f"{path}.file_id", "uploaded file ids are not supported; send file_data")
    filename = part.get("filename")
    guessed = mimetypes.guess_type(filename)[0] if isinstance(filename, str) else None
    data = part.get("file_data")
    if isinstance(data, str) and data:
        parsed = parse_data_uri(data)
        if parsed is not None:
            return {"inlineData": {"mimeType": parsed[0], "data": parsed[1]}}
        if not guessed:
            raise _bad(f"{path}.file_data", "must be a data URI (data:<mime>;base64,...) or come "
                       "with a filename that names its type")
        return {"inlineData": {"mimeType": guessed, "data": data}}
    url = part.get("file_url")
    if isinstance(url, str) and url:
        return _by_url(url, f"{path}.file_url", guessed or "application/pdf")
    raise _bad(path, "must carry file_data or file_url")


def _by_url(url: str, path: str, fallback: str) -> Part:
    if url.startswith("data:"):
        parsed = parse_data_uri(url)
        if parsed is None:
            raise _bad(path, "is not a valid data URI")
        return {"inlineData": {"mimeType": parsed[0], "data": parsed[1]}}
    split = urlsplit(url)
    if split.scheme.lower() not in ("http", "https"):
        raise _bad(path, "must be a data: URI or an http(s) URL")
    guessed, _ = mimetypes.guess_type(split.path)
    mime = guessed if guessed and guessed.split("/")[0] == fallback.split("/")[0] else fallback
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def call_names(contents: list[Content]) -> dict[str, str]:
    """Call id -> function name, for every call in stored contents."""
    names: dict[str, str] = {}
    for content in contents:
        for part in content.get("parts") or ():
            call = part.get("functionCall") if isinstance(part, dict) else None
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                names[call["id"]] = str(call.get("name") or "")
    return names

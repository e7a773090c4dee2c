"""OpenAI Responses request -> Gemini GenerateContentRequest (the Responses door's side).

:func:`read_request` validates the top level, reads the input items
(:mod:`responses_items`) after the stored conversation a ``previous_response_id`` named,
and the parameters (:mod:`responses_params`). What changes the answer and cannot be
served (``background``, ``conversation``, stored ``prompt`` templates) is refused naming
the field; fields that cannot change what the answer says (``metadata``, ``user``,
``prompt_cache_key``, ``client_metadata``, ...) are accepted; a field this translation does
not know is accepted with a warning, so an agent's newer release still works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gemgate.errors import InvalidArgument
from gemgate.translate.responses_items import InputReader, call_names
from gemgate.translate.responses_params import generation_config
from gemgate.translate.responses_tools import ToolMap, narrow, read_tools, tool_config

# Read by the door or the translation.
KNOWN = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "text", "reasoning", "max_output_tokens", "temperature", "top_p", "top_logprobs",
        "store", "stream", "previous_response_id", "metadata", "include",
    }
)
# Accepted and deliberately not translated: they do not change the answer.
ACCEPTED = frozenset(
    {
        "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
        "client_metadata", "service_tier", "stream_options", "truncation", "max_tool_calls",
    }
)
_REFUSED = {
    "conversation": "the Conversations API is not supported; use previous_response_id",
    "prompt": "stored prompt templates are not supported; send the input itself",
}
MAX_METADATA = 16


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


@dataclass(slots=True)
class History:
    """A stored conversation: its canonical contents and the system texts of its messages
    (a previous response's ``instructions`` are not carried over, as OpenAI documents)."""

    contents: list[dict[str, Any]] = field(default_factory=list)
    system: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"contents": self.contents, "system": self.system}

    @classmethod
    def from_json(cls, data: Any) -> History:
        if not isinstance(data, dict):
            return cls()
        return cls(list(data.get("contents") or []), list(data.get("system") or []))


@dataclass(slots=True)
class Translated:
    request: dict[str, Any]  # the Gemini GenerateContentRequest
    history: History  # the conversation through this request's input
    warnings: list[str]
    tools: ToolMap = field(default_factory=ToolMap)  # Gemini declaration -> client tool


def check_top_level(body: dict[str, Any]) -> list[str]:
    """Refuse what cannot be served; warn of what is not known. The warnings."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "you must provide a model parameter")
    if body.get("background"):
        raise _bad("background", "background responses are not supported; leave it false")
    for name, why in _REFUSED.items():
        if body.get(name) is not None:
            raise _bad(name, why)
    for name in ("store", "stream", "parallel_tool_calls"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise _bad(name, "must be a boolean")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise _bad("previous_response_id", "must be a non-empty string")
    _metadata(body.get("metadata"))
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(v, str) for v in include)
    ):
        raise _bad("include", "must be an array of strings")
    if body.get("instructions") is not None and not isinstance(body["instructions"], str):
        raise _bad("instructions", "must be a string")
    known = KNOWN | ACCEPTED | set(_REFUSED) | {"background"}
    return [f"the field {k!r} is not known to this gateway and was ignored"
            for k in body if k not in known]


def _metadata(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or len(value) > MAX_METADATA:
        raise _bad("metadata", f"must be an object of at most {MAX_METADATA} string values")
    for k, v in value.items():
        if not isinstance(v, str) or len(k) > 64 or len(v) > 512:
            raise _bad(f"metadata.{k}", "must be a string of at most 512 characters (keys at most 64)")


def read_request(
    body: dict[str, Any], history: History | None = None, *, mixed_tools: bool = False
) -> Translated:
    """A Responses request (checked by :func:`check_top_level`) -> the Gemini request,
    after ``history`` (the stored conversation ``previous_response_id`` named);
    ``mixed_tools``: the model takes built-in tools next to function declarations."""
    past = history or History()
    warnings: list[str] = []
    reader = InputReader(call_names(past.contents))
    if body.get("input") is None:
        raise _bad("input", "is required")
    reader.read(body["input"])
    warnings.extend(reader.warnings)
    contents = [*past.contents, *reader.finish()]
    if not contents:
        raise _bad("input", "must contain at least one message")
    request: dict[str, Any] = {"contents": contents}
    system = [*past.system, *reader.system]
    instructions = body.get("instructions")
    texts = ([instructions] if instructions else []) + system
    if texts:
        request["systemInstruction"] = {"parts": [{"text": "\n\n".join(texts)}]}
    declared = read_tools(body.get("tools"), warnings, mixed=mixed_tools)
    narrow(declared, body.get("tool_choice"))
    if declared.tools:
        request["tools"] = declared.tools
    config = tool_config(body.get("tool_choice"), declared.declared, warnings)
    if declared.builtins and declared.declared:
        # Gemini 3 runs its built-in tools next to the client's functions when asked to.
        config = config or {}
        config["includeServerSideToolInvocations"] = True
    if config is not None:
        request["toolConfig"] = config
    generation = generation_config(body)
    if generation:
        request["generationConfig"] = generation
    return Translated(request, History(contents, system), warnings, declared.map)

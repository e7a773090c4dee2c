"""Pieces shared by the Anthropic Messages <-> Gemini translations: stop reasons, usage,
tool-use ids and thought signatures. Pure functions, no I/O.

Thought signatures: Gemini signs a part (a thought, a functionCall, sometimes a text) with
an opaque ``thoughtSignature`` that must come back on the next turn. An Anthropic client
keeps signatures only on ``thinking`` blocks, so a signed thought becomes a thinking block
carrying its signature, and the signature of any other part becomes an empty thinking
block (no text, the signature) placed just before that part's block; on the way back an
empty signed thinking block gives its signature to the part that follows it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from gemgate.translate.openai_common import FILTERED, as_int

MESSAGES = "anthropic.messages"  # the wire protocol of /v1/messages bodies

_STOP_TO_GEMINI = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "pause_turn": "STOP",
    "max_tokens": "MAX_TOKENS",
    "model_context_window_exceeded": "MAX_TOKENS",
    "refusal": "SAFETY",
}
# A signature Gemini's schema accepts (bytes, as standard or URL-safe base64).
_SIGNATURE = re.compile(r"[A-Za-z0-9+/\-_]+={0,2}")


def stop_reason(finish: Any, *, has_calls: bool, blocked: bool = False) -> str:
    """A Gemini finishReason as an Anthropic stop_reason."""
    if blocked or finish in FILTERED:
        return "refusal"
    if has_calls:
        return "tool_use"
    if finish == "MAX_TOKENS":
        return "max_tokens"
    return "end_turn"


def finish_reason(stop: Any) -> str | None:
    """An Anthropic stop_reason as a Gemini finishReason (None while there is none)."""
    if stop is None:
        return None
    return _STOP_TO_GEMINI.get(str(stop), "OTHER")


def usage_to_anthropic(meta: dict[str, Any]) -> dict[str, int]:
    """Gemini usageMetadata -> Anthropic usage. Anthropic's ``input_tokens`` excludes the
    cached prompt (reported as ``cache_read_input_tokens``); nothing is written to a cache
    by a Gemini upstream, so ``cache_creation_input_tokens`` is 0. Thoughts are output."""
    prompt = as_int(meta.get("promptTokenCount"))
    cached = as_int(meta.get("cachedContentTokenCount"))
    tool_prompt = as_int(meta.get("toolUsePromptTokenCount"))
    output = as_int(meta.get("candidatesTokenCount")) + as_int(meta.get("thoughtsTokenCount"))
    return {
        "input_tokens": max(0, prompt - cached) + tool_prompt,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def usage_to_gemini(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage -> Gemini usageMetadata. The prompt counts every input token (fresh,
    read from the cache, and written to it), as Google's promptTokenCount does."""
    fresh = as_int(usage.get("input_tokens"))
    read = as_int(usage.get("cache_read_input_tokens"))
    written = as_int(usage.get("cache_creation_input_tokens"))
    output = as_int(usage.get("output_tokens"))
    prompt = fresh + read + written
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    }
    if read:
        meta["cachedContentTokenCount"] = read
    return meta


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def new_tool_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def is_base64(value: Any) -> bool:
    """Whether Gemini's schema takes ``value`` as bytes (standard or URL-safe base64)."""
    return (
        isinstance(value, str)
        and _SIGNATURE.fullmatch(value) is not None
        and len(value.rstrip("=")) % 4 != 1
    )


def valid_signature(value: Any) -> str | None:
    """A signature that can travel as Gemini's ``thoughtSignature``; None otherwise."""
    return value if is_base64(value) else None

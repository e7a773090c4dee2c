"""Pieces shared by the OpenAI <-> Gemini translations: finish reasons, usage, data URIs,
tool-call ids and log probabilities. Pure functions, no I/O."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import unquote_to_bytes

# Gemini finish reasons that mean "the answer was filtered".
FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    }
)

_FINISH_TO_GEMINI = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "tool_calls": "STOP",
    "function_call": "STOP",
}

# input_audio formats OpenAI accepts, by Gemini mime type.
AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
}


def finish_to_openai(reason: Any, *, has_calls: bool) -> str:
    """A Gemini finishReason as an OpenAI finish_reason."""
    if has_calls:
        return "tool_calls"
    if reason in ("MAX_TOKENS", "CONTINUATION"):  # CONTINUATION: the rest comes in a next hop
        return "length"
    if reason in FILTERED:
        return "content_filter"
    return "stop"


def finish_to_gemini(reason: Any) -> str | None:
    """An OpenAI finish_reason as a Gemini finishReason (None when there is none yet)."""
    if reason is None:
        return None
    return _FINISH_TO_GEMINI.get(str(reason), "OTHER")


def as_int(value: Any) -> int:
    """A token count from either side (proto3 JSON may send int64 as a string)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def usage_to_openai(meta: dict[str, Any]) -> dict[str, Any]:
    """Gemini usageMetadata -> OpenAI usage."""
    prompt = as_int(meta.get("promptTokenCount"))
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    completion = (
        as_int(meta.get("candidatesTokenCount"))
        + as_int(meta.get("toolUsePromptTokenCount"))
        + thoughts
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": as_int(meta.get("cachedContentTokenCount"))},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def usage_to_gemini(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage -> Gemini usageMetadata."""
    prompt = as_int(usage.get("prompt_tokens"))
    completion = as_int(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = as_int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    reasoning = (
        as_int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0
    )
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(0, completion - reasoning),
        "totalTokenCount": prompt + completion,
    }
    if cached:
        meta["cachedContentTokenCount"] = cached
    if reasoning:
        meta["thoughtsTokenCount"] = reasoning
    return meta


def parse_data_uri(uri: str) -> tuple[str, str] | None:
    """``data:<mime>[;base64],<payload>`` -> (mime, base64 data); None if not a data URI."""
    if not uri.startswith("data:"):
        return None
    comma = uri.find(",")
    if comma < 0:
        return None
    meta = uri[5:comma].split(";")
    mime = (meta[0].strip() or "text/plain").lower()
    payload = uri[comma + 1 :]
    if any(m.strip().lower() == "base64" for m in meta[1:]):
        return mime, payload.strip()
    return mime, base64.b64encode(unquote_to_bytes(payload)).decode("ascii")


def std_b64(data: str) -> str:
    """Gemini accepts URL-safe and unpadded base64; data URIs want the standard alphabet."""
    if "-" in data or "_" in data:
        data = data.replace("-", "+").replace("_", "/")
    rem = len(data) % 4
    if rem:
        data += "=" * (4 - rem)
    return data


def data_uri(mime: str, data: str) -> str:
    return f"data:{mime};base64,{std_b64(data)}"


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def dumps_args(args: Any) -> str:
    """Function-call arguments as OpenAI's JSON string."""
    return json.dumps(args if args is not None else {}, ensure_ascii=False, separators=(",", ":"))


def logprobs_to_openai(result: dict[str, Any]) -> dict[str, Any]:
    """Gemini logprobsResult -> OpenAI choice.logprobs."""
    chosen = result.get("chosenCandidates") or []
    tops = result.get("topCandidates") or []
    content: list[dict[str, Any]] = []
    for k, cand in enumerate(chosen):
        if not isinstance(cand, dict):
            continue
        top_list = (
            tops[k].get("candidates") if k < len(tops) and isinstance(tops[k], dict) else None
        )
        content.append(
            {
                **_token_to_openai(cand),
                "top_logprobs": [
                    _token_to_openai(t) for t in (top_list or []) if isinstance(t, dict)
                ],
            }
        )
    return {"content": content, "refusal": None}


def _token_to_openai(cand: dict[str, Any]) -> dict[str, Any]:
    token = str(cand.get("token") or "")
    return {
        "token": token,
        "logprob": float(cand.get("logProbability") or 0.0),
        "bytes": list(token.encode("utf-8")),
    }


def logprobs_to_gemini(logprobs: dict[str, Any]) -> dict[str, Any] | None:
    """OpenAI choice.logprobs -> Gemini logprobsResult (None when it carries no tokens)."""
    content = logprobs.get("content")
    if not isinstance(content, list) or not content:
        return None
    chosen: list[dict[str, Any]] = []
    tops: list[dict[str, Any]] = []
    for item in content:
        if not isinstance(item, dict):
            continue
        chosen.append(_token_to_gemini(item))
        top = item.get("top_logprobs")
        tops.append(
            {"candidates": [_token_to_gemini(t) for t in (top or []) if isinstance(t, dict)]}
        )
    return {"topCandidates": tops, "chosenCandidates": chosen}


def _token_to_gemini(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "token": str(item.get("token") or ""),
        "logProbability": float(item.get("logprob") or 0.0),
    }

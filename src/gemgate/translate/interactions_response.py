"""The canonical Gemini answer -> Interactions API steps, usage and the interaction object.

Usage goes both ways: an Interactions upstream's ``usage`` becomes the ``usageMetadata``
the meter reads (:func:`usage_metadata`), and what was billed becomes the client's
``usage`` (:func:`interaction_usage`): ``total_input_tokens`` (cached included, as
Google counts a prompt), ``total_output_tokens`` (thoughts excluded),
``total_thought_tokens``, ``total_cached_tokens``, ``total_tool_use_tokens``,
``total_tokens`` and the ``*_by_modality`` lists.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from gemgate.billing import Usage

MODALITIES = ("text", "image", "audio", "video", "document")
_FAILED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                     "MALFORMED_FUNCTION_CALL", "OTHER", "LANGUAGE"})


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _by_modality(counts: dict[str, int]) -> list[dict[str, Any]]:
    return [{"modality": m, "tokens": n} for m, n in counts.items() if n]


def interaction_usage(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "total_input_tokens": u.prompt_total,
        "total_output_tokens": u.candidates_total,
        "total_thought_tokens": u.thoughts,
        "total_cached_tokens": u.cached_total,
        "total_tool_use_tokens": u.tool_use_prompt,
        "total_tokens": u.total,
    }
    lists = {
        "input_tokens_by_modality": {m: getattr(u, f"prompt_{m}") for m in MODALITIES},
        "output_tokens_by_modality": {"text": u.output_text, "image": u.output_image, "audio": u.output_audio},
        "cached_tokens_by_modality": {m: getattr(u, f"cached_{m}") for m in MODALITIES},
        "tool_use_tokens_by_modality": {m: getattr(u, f"tool_use_{m}") for m in MODALITIES},
    }
    for name, counts in lists.items():
        items = _by_modality(counts)
        if items:
            out[name] = items
    return out


def _details(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    return [
        {"modality": str(i.get("modality") or "text").upper(), "tokenCount": i.get("tokens") or 0}
        for i in items
        if isinstance(i, dict)
    ]


def usage_metadata(usage: Any) -> dict[str, Any] | None:
    """An Interactions ``usage`` object as Gemini's ``usageMetadata`` (what the meter reads)."""
    if not isinstance(usage, dict):
        return None
    meta: dict[str, Any] = {
        "promptTokenCount": usage.get("total_input_tokens") or 0,
        "candidatesTokenCount": usage.get("total_output_tokens") or 0,
        "thoughtsTokenCount": usage.get("total_thought_tokens") or 0,
        "cachedContentTokenCount": usage.get("total_cached_tokens") or 0,
        "toolUsePromptTokenCount": usage.get("total_tool_use_tokens") or 0,
        "totalTokenCount": usage.get("total_tokens") or 0,
    }
    for src, dst in (("input_tokens_by_modality", "promptTokensDetails"),
                     ("output_tokens_by_modality", "candidatesTokensDetails"),
                     ("cached_tokens_by_modality", "cacheTokensDetails"),
                     ("tool_use_tokens_by_modality", "toolUsePromptTokensDetails")):
        details = _details(usage.get(src))
        if details:
            meta[dst] = details
    return meta


def call_id() -> str:
    return "call_" + secrets.token_hex(8)


def content_of(part: dict[str, Any]) -> dict[str, Any] | None:
    """A Gemini part's content block (text or media), or None for any other part."""
    if "text" in part:
        return {"type": "text", "text": part["text"]}
    media = part.get("inlineData")
    if isinstance(media, dict):
        mime = str(media.get("mimeType") or "application/octet-stream")
        kind = mime.split("/", 1)[0]
        return {"type": kind if kind in ("image", "audio", "video") else "document",
                "data": media.get("data"), "mime_type": mime}
    file = part.get("fileData")
    if isinstance(file, dict):
        mime = str(file.get("mimeType") or "")
        kind = mime.split("/", 1)[0]
        return {"type": kind if kind in ("image", "audio", "video") else "document",
                "uri": file.get("fileUri"), "mime_type": mime or None}
    return None


def reply_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of a GenerateContentResponse's first candidate."""
    candidates = data.get("candidates") or []
    parts = ((candidates[0].get("content") or {}).get("parts") or []) if candidates else []
    steps: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        signature = part.get("thoughtSignature")
        if part.get("thought"):
            step: dict[str, Any] = {"type": "thought"}
            if part.get("text"):
                step["summary"] = [{"type": "text", "text": part["text"]}]
            if signature:
                step["signature"] = signature
            steps.append(step)
            continue
        if signature:
            steps.append({"type": "thought", "signature": signature})
        call = part.get("functionCall")
        if isinstance(call, dict):
            steps.append({"type": "function_call", "id": call.get("id") or call_id(),
                          "name": call.get("name"), "arguments": call.get("args") or {}})
            continue
        content = content_of(part)
        if content is None:
            continue
        if steps and steps[-1]["type"] == "model_output" and not signature:
            steps[-1]["content"].append(content)
        else:
            steps.append({"type": "model_output", "content": [content]})
    return steps


def status_of(data: dict[str, Any], steps: list[dict[str, Any]]) -> str:
    """The interaction's status for a finished canonical answer."""
    feedback = data.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        return "failed"
    candidates = data.get("candidates") or []
    finish = candidates[0].get("finishReason") if candidates else None
    if any(s["type"] == "function_call" for s in steps):
        return "requires_action"
    if finish == "MAX_TOKENS":
        return "incomplete"
    if finish in _FAILED:
        return "failed"
    return "completed"


def interaction(
    interaction_id: str,
    model: str,
    status: str,
    *,
    steps: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    created: str | None = None,
    previous: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": interaction_id,
        "object": "interaction",
        "model": model,
        "status": status,
        "created": created or now_text(),
        "updated": now_text(),
    }
    if previous:
        out["previous_interaction_id"] = previous
    if steps is not None:
        out["steps"] = steps
    if usage is not None:
        out["usage"] = usage
    out.update(extra or {})
    return out

"""Complete answers: Gemini GenerateContentResponse <-> Anthropic Message.

Gemini output an Anthropic message cannot hold (generated images, executed code) is left
out; everything else maps one to one, thought signatures as described in
:mod:`gemgate.translate.anthropic_common`.
"""

from __future__ import annotations

from typing import Any

from gemgate.translate.anthropic_common import (
    as_dict,
    finish_reason,
    new_tool_id,
    stop_reason,
    usage_to_anthropic,
    usage_to_gemini,
    valid_signature,
)

Block = dict[str, Any]


def signed_gap(signature: str) -> Block:
    """The empty thinking block that carries the signature of the block after it."""
    return {"type": "thinking", "thinking": "", "signature": signature}


def tool_use_block(part: dict[str, Any]) -> Block:
    fc = as_dict(part.get("functionCall"))
    args = fc.get("args")
    return {
        "type": "tool_use",
        "id": fc.get("id") or new_tool_id(),
        "name": str(fc.get("name") or ""),
        "input": args if isinstance(args, dict) else {},
    }


def content_blocks(parts: Any) -> list[Block]:
    """The parts of one Gemini candidate as Anthropic content blocks."""
    blocks: list[Block] = []
    if not isinstance(parts, list):
        return blocks
    for part in parts:
        if not isinstance(part, dict):
            continue
        raw_sig = part.get("thoughtSignature")
        sig = raw_sig if isinstance(raw_sig, str) and raw_sig else None
        last = blocks[-1] if blocks else None
        if "functionCall" in part:
            if sig:
                blocks.append(signed_gap(sig))
            blocks.append(tool_use_block(part))
            continue
        text = part.get("text")
        if not isinstance(text, str):
            continue  # images, executed code: nothing an Anthropic message can hold
        if part.get("thought"):
            if last is not None and last["type"] == "thinking" and not last["signature"] and last["thinking"]:
                last["thinking"] += text
                last["signature"] = sig or ""
            else:
                blocks.append({"type": "thinking", "thinking": text, "signature": sig or ""})
            continue
        if sig:
            blocks.append(signed_gap(sig))
        elif last is not None and last["type"] == "text":
            last["text"] += text
            continue
        if text:
            blocks.append({"type": "text", "text": text})
    return blocks


def gemini_to_message(resp: dict[str, Any], *, model: str, message_id: str) -> dict[str, Any]:
    """A GenerateContentResponse -> an Anthropic Message (the first candidate: an Anthropic
    request never asks for more)."""
    candidates = resp.get("candidates") or []
    cand = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    content = as_dict(cand.get("content"))
    blocks = content_blocks(content.get("parts"))
    feedback = resp.get("promptFeedback")
    blocked = not candidates and isinstance(feedback, dict) and bool(feedback.get("blockReason"))
    meta = resp.get("usageMetadata")
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason(
            cand.get("finishReason"),
            has_calls=any(b["type"] == "tool_use" for b in blocks),
            blocked=blocked,
        ),
        "stop_sequence": None,
        "usage": usage_to_anthropic(meta if isinstance(meta, dict) else {}),
    }


def block_part(block: dict[str, Any]) -> dict[str, Any] | None:
    """One block of an Anthropic answer as a Gemini part (None: nothing to carry)."""
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return {"text": block["text"]}
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        part: dict[str, Any] = {"text": block["thinking"], "thought": True}
        sig = valid_signature(block.get("signature"))
        if sig:
            part["thoughtSignature"] = sig
        return part
    if kind == "tool_use":
        args = block.get("input")
        call: dict[str, Any] = {"name": str(block.get("name") or ""), "args": args if isinstance(args, dict) else {}}
        if isinstance(block.get("id"), str) and block["id"]:
            call = {"id": block["id"], **call}
        return {"functionCall": call}
    return None  # redacted thinking, server tool traffic


def message_to_gemini(msg: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Message -> a GenerateContentResponse."""
    parts = [p for b in msg.get("content") or () if isinstance(b, dict) and (p := block_part(b))]
    cand: dict[str, Any] = {
        "content": {"role": "model", "parts": parts},
        "index": 0,
        "finishReason": finish_reason(msg.get("stop_reason")) or "STOP",
    }
    out: dict[str, Any] = {"candidates": [cand]}
    usage = msg.get("usage")
    if isinstance(usage, dict):
        out["usageMetadata"] = usage_to_gemini(usage)
    if isinstance(msg.get("model"), str):
        out["modelVersion"] = msg["model"]
    if isinstance(msg.get("id"), str):
        out["responseId"] = msg["id"]
    return out

"""Complete answers: Gemini GenerateContentResponse <-> OpenAI chat.completion."""

from __future__ import annotations

from typing import Any

from gemgate.errors import InvalidArgument
from gemgate.translate.openai_common import (
    data_uri,
    dumps_args,
    finish_to_gemini,
    finish_to_openai,
    logprobs_to_gemini,
    logprobs_to_openai,
    new_call_id,
    parse_data_uri,
    usage_to_gemini,
    usage_to_openai,
)
from gemgate.translate.openai_ids import signed_call_id, split_call_id
from gemgate.types.validate import loads_strict


class MessageParts:
    """The pieces of one Gemini candidate's parts, sorted into OpenAI's message fields.

    ``signed_ids``: a signed call's id carries its thought signature (see
    :mod:`gemgate.translate.openai_ids`), for clients that drop ``extra_content``."""

    __slots__ = ("calls", "images", "signed_ids", "texts", "thoughts")

    def __init__(self, *, signed_ids: bool = False) -> None:
        self.signed_ids = signed_ids
        self.texts: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []

    def add(self, parts: Any) -> None:
        if not isinstance(parts, list):
            return
        for part in parts:
            if not isinstance(part, dict):
                continue
            if "functionCall" in part:
                self.calls.append(tool_call(part, signed_id=self.signed_ids))
            elif "text" in part:
                text = part["text"]
                if isinstance(text, str):
                    (self.thoughts if part.get("thought") else self.texts).append(text)
            elif "inlineData" in part:
                image = image_item(part["inlineData"])
                if image is not None:
                    self.images.append(image)


def tool_call(part: dict[str, Any], *, signed_id: bool = False) -> dict[str, Any]:
    """A Gemini functionCall part -> an OpenAI tool call (without the stream index); with
    ``signed_id`` the id also carries the part's thought signature."""
    fc = part["functionCall"] if isinstance(part.get("functionCall"), dict) else {}
    signature = part.get("thoughtSignature")
    call_id = str(fc.get("id") or new_call_id())
    if signed_id and isinstance(signature, str):
        call_id = signed_call_id(call_id, signature)
    call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {
            "name": str(fc.get("name") or ""),
            "arguments": dumps_args(fc.get("args") or {}),
        },
    }
    if isinstance(signature, str) and signature:
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


def image_item(inline: Any) -> dict[str, Any] | None:
    if not isinstance(inline, dict):
        return None
    mime = inline.get("mimeType")
    data = inline.get("data")
    if not isinstance(mime, str) or not mime.startswith("image/") or not isinstance(data, str):
        return None
    return {"type": "image_url", "image_url": {"url": data_uri(mime, data)}}


def gemini_to_chat_response(
    resp: dict[str, Any],
    *,
    model: str,
    request_id: str,
    created: int,
    signed_ids: bool = True,
    thought_tag: str | None = None,
) -> dict[str, Any]:
    """A GenerateContentResponse -> an OpenAI chat.completion (``signed_ids``: see
    :class:`MessageParts`; ``thought_tag``: thoughts go in the content between
    ``<thought_tag>`` tags instead of ``reasoning_content``)."""
    choices: list[dict[str, Any]] = []
    candidates = resp.get("candidates") or []
    for pos, cand in enumerate(candidates):
        if not isinstance(cand, dict):
            continue
        pieces = MessageParts(signed_ids=signed_ids)
        content = cand.get("content")
        if isinstance(content, dict):
            pieces.add(content.get("parts"))
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(pieces.texts) if pieces.texts else None,
        }
        if pieces.thoughts and thought_tag:
            thought = f"<{thought_tag}>{''.join(pieces.thoughts)}</{thought_tag}>"
            message["content"] = thought + (message["content"] or "")
        elif pieces.thoughts:
            message["reasoning_content"] = "".join(pieces.thoughts)
        if pieces.calls:
            message["tool_calls"] = pieces.calls
        if pieces.images:
            message["images"] = pieces.images
        lp = cand.get("logprobsResult")
        choices.append(
            {
                "index": cand.get("index", pos),
                "message": message,
                "logprobs": logprobs_to_openai(lp) if isinstance(lp, dict) else None,
                "finish_reason": finish_to_openai(
                    cand.get("finishReason"), has_calls=bool(pieces.calls)
                ),
            }
        )
    if not choices:
        feedback = resp.get("promptFeedback")
        blocked = isinstance(feedback, dict) and bool(feedback.get("blockReason"))
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": "content_filter" if blocked else "stop",
            }
        )
    out: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    meta = resp.get("usageMetadata")
    if isinstance(meta, dict):
        out["usage"] = usage_to_openai(meta)
    return out


def parse_arguments(arguments: Any) -> dict[str, Any] | None:
    """OpenAI's tool-call arguments -> Gemini args; None when they are not a JSON object."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if not isinstance(arguments, str):
        return None
    try:
        args = loads_strict(arguments, "arguments")
    except (ValueError, InvalidArgument):  # not JSON, or beyond what a client may send
        return None
    return args if isinstance(args, dict) else None


def function_call_part(call_id: Any, name: Any, args: dict[str, Any], extra: Any) -> dict[str, Any]:
    """An OpenAI tool call -> a Gemini functionCall part, its signature from
    ``extra_content`` or, failing that, from a signed id."""
    fc: dict[str, Any] = {"name": str(name or ""), "args": args}
    carried = None
    if isinstance(call_id, str) and call_id:
        fc["id"], carried = split_call_id(call_id)
    part: dict[str, Any] = {"functionCall": fc}
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    elif carried:
        part["thoughtSignature"] = carried
    return part


def image_parts(images: Any) -> list[dict[str, Any]]:
    """The ``images`` extension (data URIs) -> inlineData parts."""
    parts: list[dict[str, Any]] = []
    if not isinstance(images, list):
        return parts
    for image in images:
        url = None
        if isinstance(image, dict):
            inner = image.get("image_url")
            url = inner.get("url") if isinstance(inner, dict) else inner
        parsed = parse_data_uri(url) if isinstance(url, str) else None
        if parsed is not None:
            parts.append({"inlineData": {"mimeType": parsed[0], "data": parsed[1]}})
    return parts


def chat_response_to_gemini(resp: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat.completion -> a GenerateContentResponse."""
    candidates: list[dict[str, Any]] = []
    for pos, choice in enumerate(resp.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        raw_msg = choice.get("message")
        msg: dict[str, Any] = raw_msg if isinstance(raw_msg, dict) else {}
        parts: list[dict[str, Any]] = []
        reasoning = msg.get("reasoning_content", msg.get("reasoning"))
        if isinstance(reasoning, str) and reasoning:
            parts.append({"text": reasoning, "thought": True})
        content = msg.get("content")
        if isinstance(content, str) and content:
            parts.append({"text": content})
        refusal = msg.get("refusal")
        if isinstance(refusal, str) and refusal and not content:
            parts.append({"text": refusal})
        parts.extend(image_parts(msg.get("images")))
        malformed = False
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict):
                malformed = True
                continue
            args = parse_arguments(fn.get("arguments"))
            if args is None:
                malformed = True
                continue
            parts.append(
                function_call_part(call.get("id"), fn.get("name"), args, call.get("extra_content"))
            )
        cand: dict[str, Any] = {
            "content": {"role": "model", "parts": parts},
            "index": choice.get("index", pos),
        }
        finish = (
            "MALFORMED_FUNCTION_CALL"
            if malformed
            else finish_to_gemini(choice.get("finish_reason"))
        )
        if finish:
            cand["finishReason"] = finish
        lp = choice.get("logprobs")
        result = logprobs_to_gemini(lp) if isinstance(lp, dict) else None
        if result is not None:
            cand["logprobsResult"] = result
        candidates.append(cand)
    out: dict[str, Any] = {"candidates": candidates}
    usage = resp.get("usage")
    if isinstance(usage, dict):
        out["usageMetadata"] = usage_to_gemini(usage)
    if isinstance(resp.get("model"), str):
        out["modelVersion"] = resp["model"]
    if isinstance(resp.get("id"), str):
        out["responseId"] = resp["id"]
    return out

"""``POST /v1/responses/compact``: a conversation compacted into its user messages and one
``compaction`` item (the Responses door's side).

The request names a model and the conversation (``input`` items, and or a stored
``previous_response_id``); the gateway asks that model, in one ordinary billed call, for a
summary that lets the work continue. The answer is OpenAI's ``response.compaction`` object:
every user message of the input, then a ``compaction`` item whose ``encrypted_content``
holds the summary (:func:`~gemgate.translate.responses_items.seal_summary`). Sent back as
input, that item becomes a user turn carrying the summary.
"""

from __future__ import annotations

from typing import Any

from gemgate.errors import InvalidArgument
from gemgate.translate.responses_items import InputReader, call_names, seal_summary
from gemgate.translate.responses_request import History

# Read by the translation, or accepted and without effect on the summary.
KNOWN = frozenset(
    {
        "model", "input", "instructions", "previous_response_id", "prompt_cache_key",
        "prompt_cache_retention", "prompt_cache_options", "safety_identifier", "service_tier",
        "image",
    }
)
PROMPT = (
    "You compact a conversation between a user and an AI assistant (often a coding agent "
    "using tools) so that the assistant can continue the work from your summary alone. "
    "Write a faithful, dense summary: the user's goals and constraints, decisions made, what "
    "was done (files changed, commands run and what they showed), the current state, and "
    "what remains to do next. Keep exact names, paths, identifiers and numbers. Do not "
    "address the user; write only the summary."
)
ASK = "Summarise the conversation above as instructed, to replace it."


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def check_compact(body: dict[str, Any]) -> list[str]:
    """Refuse a malformed compaction request; the unknown fields it carries."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "you must provide a model parameter")
    if body.get("input") is None and body.get("previous_response_id") is None:
        raise _bad("input", "is required unless previous_response_id names the conversation")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise _bad("previous_response_id", "must be a non-empty string")
    if body.get("instructions") is not None and not isinstance(body["instructions"], str):
        raise _bad("instructions", "must be a string")
    return [k for k in body if k not in KNOWN]


def compact_request(body: dict[str, Any], history: History | None) -> dict[str, Any]:
    """The Gemini request that asks for the summary."""
    past = history or History()
    reader = InputReader(call_names(past.contents))
    if body.get("input") is not None:
        reader.read(body["input"])
    contents = [*past.contents, *reader.finish()]
    if not contents:
        raise _bad("input", "must contain at least one item to compact")
    system = [PROMPT]
    instructions = body.get("instructions")
    texts = [*past.system, *reader.system, *([instructions] if instructions else [])]
    if texts:
        system.append("The assistant worked under these instructions:\n\n" + "\n\n".join(texts))
    return {
        "contents": [*contents, {"role": "user", "parts": [{"text": ASK}]}],
        "systemInstruction": {"parts": [{"text": "\n\n".join(system)}]},
    }


def summary_text(reply: dict[str, Any]) -> str:
    """The summary: the first candidate's text, thoughts left out."""
    candidates = reply.get("candidates") or [{}]
    content = candidates[0].get("content") if isinstance(candidates[0], dict) else None
    parts = (content or {}).get("parts") or ()
    return "".join(p["text"] for p in parts
                   if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought"))


def user_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input's user messages, as the compacted output lists them."""
    return [
        {"id": item["id"], "type": "message", "role": "user", "status": "completed",
         "content": item.get("content") or []}
        for item in items
        if item.get("type") == "message" and item.get("role") == "user"
    ]


def compacted(
    *, response_id: str, created: int, items: list[dict[str, Any]], summary: str,
    item_id: str, usage: dict[str, Any],
) -> dict[str, Any]:
    """OpenAI's ``response.compaction`` object."""
    return {
        "id": response_id,
        "object": "response.compaction",
        "created_at": created,
        "output": [
            *user_messages(items),
            {"id": item_id, "type": "compaction", "encrypted_content": seal_summary(summary)},
        ],
        "usage": usage,
    }

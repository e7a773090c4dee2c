"""Streams: Gemini chunks -> Anthropic message events (door side) and back (provider side).

Anthropic's sequence is ``message_start``, ``ping``, then per content block
``content_block_start``, ``content_block_delta``... ``content_block_stop``, and last
``message_delta`` (stop reason, cumulative usage) and ``message_stop``. Both directions
are incremental: text goes on in the event that carries it. Only a tool call's streamed
JSON is gathered on the provider side, because a Gemini functionCall carries its
arguments whole.
"""

from __future__ import annotations

import json
from typing import Any

from gemgate.translate.anthropic_common import (
    as_dict,
    finish_reason,
    stop_reason,
    usage_to_anthropic,
    usage_to_gemini,
    valid_signature,
)
from gemgate.translate.anthropic_response import tool_use_block

Event = tuple[str, dict[str, Any]]


class MessageStreamEncoder:
    """Gemini stream chunk dicts -> (event name, data) pairs of an Anthropic stream."""

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self._started = False
        self._index = -1
        self._open: str | None = None  # the open block's type: "text" or "thinking"
        self._signed = False  # the open thinking block has its signature
        self._calls = False
        self._finish: Any = None
        self._blocked = False
        self._usage: dict[str, Any] = {}

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        meta = chunk.get("usageMetadata")
        if isinstance(meta, dict):
            self._usage = meta
        out = self._start()
        candidates = chunk.get("candidates")
        if not candidates:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self._blocked = True
            return out
        cand = candidates[0] if isinstance(candidates[0], dict) else {}
        content = as_dict(cand.get("content"))
        for part in content.get("parts") or ():
            if isinstance(part, dict):
                self._part(part, out)
        if cand.get("finishReason"):
            self._finish = cand["finishReason"]
        return out

    def finish(self, usage_metadata: dict[str, Any] | None = None) -> list[Event]:
        """Close the last block and the message (``usage_metadata`` overrides the last
        usage seen)."""
        out = self._start()
        self._close(out)
        usage = usage_to_anthropic(usage_metadata if usage_metadata is not None else self._usage)
        reason = stop_reason(self._finish, has_calls=self._calls, blocked=self._blocked)
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    # ------------------------------------------------------------ blocks

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        usage = usage_to_anthropic(self._usage)
        usage["output_tokens"] = 0
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def _begin(self, block: dict[str, Any], out: list[Event]) -> None:
        self._close(out)
        self._index += 1
        out.append(
            ("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block})
        )

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        out.append(("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}))

    def _close(self, out: list[Event]) -> None:
        if self._index >= 0 and self._open is not None:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = None

    def _gap(self, signature: str, out: list[Event]) -> None:
        self._begin({"type": "thinking", "thinking": "", "signature": ""}, out)
        self._open = "thinking"
        self._delta({"type": "signature_delta", "signature": signature}, out)
        self._close(out)

    def _part(self, part: dict[str, Any], out: list[Event]) -> None:
        raw_sig = part.get("thoughtSignature")
        sig = raw_sig if isinstance(raw_sig, str) and raw_sig else None
        if "functionCall" in part:
            if sig:
                self._gap(sig, out)
            block = tool_use_block(part)
            args = block["input"]
            self._calls = True
            self._begin({**block, "input": {}}, out)
            self._open = "tool_use"
            self._delta({"type": "input_json_delta", "partial_json": json.dumps(args, ensure_ascii=False)}, out)
            self._close(out)
            return
        text = part.get("text")
        if not isinstance(text, str):
            return
        if part.get("thought"):
            if self._open != "thinking" or self._signed:
                self._begin({"type": "thinking", "thinking": "", "signature": ""}, out)
                self._open, self._signed = "thinking", False
            if text:
                self._delta({"type": "thinking_delta", "thinking": text}, out)
            if sig:
                self._delta({"type": "signature_delta", "signature": sig}, out)
                self._signed = True
            return
        if sig:
            self._gap(sig, out)
        if not text:
            return
        if self._open != "text":
            self._begin({"type": "text", "text": ""}, out)
            self._open = "text"
        self._delta({"type": "text_delta", "text": text}, out)


class _Block:
    __slots__ = ("fragments", "id", "kind", "name", "signature")

    def __init__(self, kind: str, block: dict[str, Any]) -> None:
        self.kind = kind
        self.id = block.get("id") if isinstance(block.get("id"), str) else None
        self.name = str(block.get("name") or "")
        self.fragments: list[str] = []
        self.signature: str | None = None


class MessageStreamDecoder:
    """Anthropic stream event dicts -> Gemini stream chunk dicts (provider side).

    Every chunk carries the usage known so far (``usageMetadata``); Anthropic reports its
    output count only in ``message_delta``, whose chunk also carries the finishReason."""

    def __init__(self) -> None:
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, _Block] = {}
        self._id: str | None = None
        self._model: str | None = None
        self._malformed = False

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            msg = as_dict(event.get("message"))
            self._id = msg.get("id") if isinstance(msg.get("id"), str) else None
            self._model = msg.get("model") if isinstance(msg.get("model"), str) else None
            self._merge(msg.get("usage"))
            return []
        index = event.get("index")
        if kind == "content_block_start" and isinstance(index, int):
            block = as_dict(event.get("content_block"))
            btype = str(block.get("type") or "")
            self._blocks[index] = _Block(btype, block)
            if btype == "text" and block.get("text"):
                return [self._chunk([{"text": block["text"]}])]
            if btype == "thinking" and block.get("thinking"):
                return [self._chunk([{"text": block["thinking"], "thought": True}])]
            return []
        if kind == "content_block_delta" and isinstance(index, int):
            return self._delta(self._blocks.get(index), event.get("delta"))
        if kind == "content_block_stop" and isinstance(index, int):
            return self._stop(self._blocks.pop(index, None))
        if kind == "message_delta":
            self._merge(event.get("usage"))
            delta = as_dict(event.get("delta"))
            reason = finish_reason(delta.get("stop_reason"))
            if reason is None:
                return []
            if self._malformed:
                reason = "MALFORMED_FUNCTION_CALL"
            return [self._chunk([], finish=reason)]
        return []  # ping, message_stop, and events this translation does not know

    def _delta(self, block: _Block | None, delta: Any) -> list[dict[str, Any]]:
        if block is None or not isinstance(delta, dict):
            return []
        dtype = delta.get("type")
        if dtype == "text_delta" and isinstance(delta.get("text"), str):
            return [self._chunk([{"text": delta["text"]}])]
        if dtype == "thinking_delta" and isinstance(delta.get("thinking"), str):
            return [self._chunk([{"text": delta["thinking"], "thought": True}])]
        if dtype == "signature_delta":
            block.signature = valid_signature(delta.get("signature"))
        elif dtype == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            block.fragments.append(delta["partial_json"])
        return []

    def _stop(self, block: _Block | None) -> list[dict[str, Any]]:
        if block is None:
            return []
        if block.kind == "thinking" and block.signature:
            return [self._chunk([{"text": "", "thought": True, "thoughtSignature": block.signature}])]
        if block.kind == "tool_use":
            text = "".join(block.fragments)
            try:
                args = json.loads(text) if text.strip() else {}
            except ValueError:
                args = None
            if not isinstance(args, dict) or not block.name:
                self._malformed = True
                return []
            call: dict[str, Any] = {"name": block.name, "args": args}
            if block.id:
                call = {"id": block.id, **call}
            return [self._chunk([{"functionCall": call}])]
        return []

    def _merge(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _chunk(self, parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            cand["finishReason"] = finish
        out: dict[str, Any] = {"candidates": [cand], "usageMetadata": usage_to_gemini(self._usage)}
        if self._model:
            out["modelVersion"] = self._model
        if self._id:
            out["responseId"] = self._id
        return out

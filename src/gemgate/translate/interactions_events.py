"""Interactions API stream events: made from canonical chunks, gathered into steps, and
replayed from stored steps for a resumed stream.

An event is ``{"event_type": ..., ...}``; on the wire it is ``event: {type}`` and
``data: {json}``. The gateway names every event it sends by its place in the interaction
(``event_id``), not by a counter: ``0`` created, ``1`` in progress, ``2.{step}.0`` a step's
start, ``2.{step}.1.{item}.{length}`` a delta that brought item ``item`` of that step to
``length`` characters (1 for a whole block), ``2.{step}.2`` its stop, ``3`` the final
status and ``4`` completed. So a stream resumed after any event id (``last_event_id``) is
rebuilt from the steps gathered so far, whether they came from this gateway's model or
from a Google upstream, and continues exactly where the client stopped reading.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from gemgate.translate.interactions_response import call_id, content_of

Event = dict[str, Any]
SIGNATURE_ITEM = 1_000_000  # a thought's signature, after any summary items


def sse(event: Event) -> bytes:
    return b"event: " + str(event.get("event_type")).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def position(event_id: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in event_id.split("."))
    except ValueError:
        return None


def _pid(pos: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in pos)


class Steps:
    """The steps of one interaction as its events arrive; gives each event its place."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self._args: dict[int, str] = {}

    def apply(self, event: Event) -> tuple[int, ...]:
        kind = event.get("event_type")
        if kind == "interaction.created":
            return (0,)
        if kind == "interaction.status_update":
            return (1,) if event.get("status") == "in_progress" else (3,)
        if kind == "interaction.completed":
            return (4,)
        index = event.get("index")
        if not isinstance(index, int) or index < 0:
            return (3,)
        if kind == "step.start":
            while len(self.steps) <= index:
                self.steps.append({})
            self.steps[index] = copy.deepcopy(event.get("step") or {})
            return (2, index, 0)
        if index >= len(self.steps):
            return (3,)
        step = self.steps[index]
        if kind == "step.stop":
            if index in self._args:
                try:
                    step["arguments"] = orjson.loads(self._args.pop(index) or "{}")
                except orjson.JSONDecodeError:
                    step["arguments"] = {}
            return (2, index, 2)
        if kind == "step.delta":
            return (2, index, 1, *self._delta(index, step, event.get("delta") or {}))
        return (3,)

    def _delta(self, index: int, step: dict[str, Any], delta: dict[str, Any]) -> tuple[int, int]:
        kind = delta.get("type")
        if kind == "thought_signature":
            step["signature"] = delta.get("signature")
            return SIGNATURE_ITEM, 1
        if kind == "thought_summary":
            summary = step.setdefault("summary", [])
            block = delta.get("content") or {}
            if block.get("type") == "text" and summary and summary[-1].get("type") == "text":
                summary[-1]["text"] += block.get("text", "")
            else:
                summary.append(dict(block))
            last = summary[-1]
            return len(summary) - 1, len(last.get("text", "")) if last.get("type") == "text" else 1
        if kind == "arguments_delta":
            self._args[index] = self._args.get(index, "") + str(delta.get("arguments") or "")
            return 0, len(self._args[index])
        content = step.setdefault("content", [])
        if kind == "text":
            if content and content[-1].get("type") == "text":
                content[-1]["text"] += delta.get("text", "")
            else:
                content.append({"type": "text", "text": delta.get("text", "")})
            return len(content) - 1, len(content[-1]["text"])
        content.append({k: v for k, v in delta.items()})
        return len(content) - 1, 1


def replay(steps: list[dict[str, Any]], after: tuple[int, ...]) -> list[Event]:
    """The step events after ``after``: each step as a start, one delta per item (the rest
    of a text the client had part of) and a stop."""
    out: list[Event] = []
    for i, step in enumerate(steps):
        kind = step.get("type")
        shell = {k: v for k, v in step.items() if k not in ("content", "summary", "signature")}
        if kind == "function_call":
            shell = dict(step)
        _emit(out, after, (2, i, 0), {"event_type": "step.start", "index": i, "step": shell})
        if kind == "thought":
            for k, block in enumerate(step.get("summary") or ()):
                _item(out, after, i, k, block, lambda b: {"type": "thought_summary", "content": b})
            if step.get("signature"):
                _emit(out, after, (2, i, 1, SIGNATURE_ITEM, 1), {"event_type": "step.delta", "index": i,
                      "delta": {"type": "thought_signature", "signature": step["signature"]}})
        elif kind != "function_call":
            for k, block in enumerate(step.get("content") or ()):
                _item(out, after, i, k, block, lambda b: b)
        _emit(out, after, (2, i, 2), {"event_type": "step.stop", "index": i})
    return out


def _emit(out: list[Event], after: tuple[int, ...], pos: tuple[int, ...], event: Event) -> None:
    if pos > after:
        out.append({**event, "event_id": _pid(pos)})


def _item(out: list[Event], after: tuple[int, ...], i: int, k: int, block: dict[str, Any], wrap: Any) -> None:
    text = block.get("text") if block.get("type") == "text" else None
    length = len(text) if isinstance(text, str) else 1
    pos = (2, i, 1, k, length)
    if pos <= after:
        return
    if text is not None and after[:4] == (2, i, 1, k) and len(after) == 5:
        block = {**block, "text": text[after[4]:]}  # the rest of a text the client had part of
    out.append({"event_type": "step.delta", "index": i, "delta": wrap(block), "event_id": _pid(pos)})


class CanonicalEvents:
    """Canonical stream chunks -> step events: a step opens when the kind of output changes
    (thought, model output, function call) and closes before the next one."""

    def __init__(self) -> None:
        self._index = -1
        self._open: str | None = None

    def _start(self, kind: str, step: dict[str, Any] | None = None) -> list[Event]:
        events = self.close()
        self._index += 1
        self._open = kind
        events.append({"event_type": "step.start", "index": self._index, "step": step or {"type": kind}})
        return events

    def close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [{"event_type": "step.stop", "index": self._index}]

    def _delta(self, delta: dict[str, Any]) -> Event:
        return {"event_type": "step.delta", "index": self._index, "delta": delta}

    def feed(self, data: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        candidates = data.get("candidates") or []
        parts = ((candidates[0].get("content") or {}).get("parts") or []) if candidates else []
        for part in parts:
            if not isinstance(part, dict):
                continue
            signature = part.get("thoughtSignature")
            if part.get("thought"):
                if self._open != "thought":
                    events += self._start("thought")
                if part.get("text"):
                    events.append(self._delta({"type": "thought_summary", "content": {"type": "text", "text": part["text"]}}))
                if signature:
                    events.append(self._delta({"type": "thought_signature", "signature": signature}))
                continue
            if signature:
                events += self._start("thought")
                events.append(self._delta({"type": "thought_signature", "signature": signature}))
                events += self.close()
            call = part.get("functionCall")
            if isinstance(call, dict):
                step = {"type": "function_call", "id": call.get("id") or call_id(),
                        "name": call.get("name"), "arguments": call.get("args") or {}}
                events += self._start("function_call", step)
                events += self.close()
                continue
            content = content_of(part)
            if content is None or (content.get("type") == "text" and not content["text"]):
                continue
            if self._open != "model_output":
                events += self._start("model_output")
            events.append(self._delta(content))
        return events

"""One interaction's event stream as a client reads it: the events of a canonical answer
(made from its chunks) or of a Google upstream (relayed with the gateway's interaction id
and the public model name), each given its place as ``event_id``, gathered into the steps
that are stored when the interaction ends.
"""

from __future__ import annotations

from typing import Any

from gemgate.billing import Usage
from gemgate.translate.interactions_events import CanonicalEvents, Event, Steps, replay, sse
from gemgate.translate.interactions_request import INTERACTIONS
from gemgate.translate.interactions_response import interaction, interaction_usage
from gemgate.types.canonical import Chunk


def _pid(pos: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in pos)


class InteractionStream:
    def __init__(self, interaction_id: str, model: str, created: str, previous: str | None) -> None:
        self.id = interaction_id
        self.model = model
        self.created = created
        self.previous = previous
        self.steps = Steps()
        self._canonical = CanonicalEvents()
        self._started = False
        self._finish: str | None = None
        self._blocked = False
        self.usage: dict[str, Any] | None = None
        self.status = "in_progress"
        self.completed = False

    def shell(self, status: str) -> dict[str, Any]:
        return {"id": self.id, "object": "interaction", "model": self.model, "status": status,
                "created": self.created}

    def _out(self, event: Event) -> bytes:
        pos = self.steps.apply(event)
        return sse({**event, "event_id": _pid(pos)})

    def opening(self) -> bytes:
        """``interaction.created`` and ``in_progress``: sent as the first answer arrives."""
        self._started = True
        return self._out({"event_type": "interaction.created", "interaction": self.shell("in_progress")}) + self._out(
            {"event_type": "interaction.status_update", "interaction_id": self.id, "status": "in_progress"}
        )

    def chunk(self, chunk: Chunk) -> bytes:
        if chunk.protocol == INTERACTIONS:
            return self._relayed(chunk.json())
        out = b"" if self._started else self.opening()
        data = chunk.json()
        for event in self._canonical.feed(data):
            out += self._out(event)
        candidates = data.get("candidates") or []
        if candidates and candidates[0].get("finishReason"):
            self._finish = str(candidates[0]["finishReason"])
        feedback = data.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self._blocked = True
        if chunk.usage is not None:
            self.usage = interaction_usage(Usage.from_metadata(chunk.usage))
        return out

    def _relayed(self, event: Event) -> bytes:
        kind = event.get("event_type")
        event = {k: v for k, v in event.items() if k != "event_id"}
        if kind in ("interaction.created", "interaction.completed"):
            upstream = dict(event.get("interaction") or {})
            upstream.update(id=self.id, model=self.model, created=self.created)
            if kind == "interaction.completed":
                self.status = str(upstream.get("status") or "completed")
                self.usage = upstream.get("usage") if isinstance(upstream.get("usage"), dict) else None
                upstream.pop("steps", None)
                self.completed = True
            event["interaction"] = upstream
            self._started = True
        elif kind == "interaction.status_update":
            event["interaction_id"] = self.id
            if event.get("status") != "in_progress":
                self.status = str(event.get("status"))
        return self._out(event)

    def final_status(self) -> str:
        if self.completed:
            return self.status
        steps = self.steps.steps
        if self._blocked:
            return "failed"
        if any(s.get("type") == "function_call" for s in steps):
            return "requires_action"
        if self._finish == "MAX_TOKENS":
            return "incomplete"
        if self._finish not in (None, "STOP"):
            return "failed"
        return "completed"

    def closing(self, usage: dict[str, Any] | None) -> bytes:
        """The end of a canonical stream: the open step's stop and the final status (the
        ``interaction.completed`` event is :meth:`completed_event`, sent once stored)."""
        out = b"" if self._started else self.opening()
        for event in self._canonical.close():
            out += self._out(event)
        self.status = self.final_status()
        if usage is not None:
            self.usage = usage
        return out + self._out(
            {"event_type": "interaction.status_update", "interaction_id": self.id, "status": self.status}
        )

    def completed_event(self) -> bytes:
        self.completed = True
        shell = self.shell(self.status)
        if self.usage is not None:
            shell["usage"] = self.usage
        return self._out({"event_type": "interaction.completed", "interaction": shell})

    def result(self) -> dict[str, Any]:
        """The interaction as stored (its output steps)."""
        return interaction(self.id, self.model, self.status, steps=self.steps.steps, usage=self.usage,
                           created=self.created, previous=self.previous)


def replayed(stored: dict[str, Any], after: tuple[int, ...]) -> bytes:
    """A stored interaction's events after ``after`` (a resumed or late-joined stream)."""
    shell = {k: stored.get(k) for k in ("id", "object", "model", "created") if stored.get(k) is not None}
    status = str(stored.get("status"))
    events: list[Event] = []
    if after < (0,):
        events.append({"event_type": "interaction.created", "interaction": {**shell, "status": "in_progress"},
                       "event_id": "0"})
    if after < (1,):
        events.append({"event_type": "interaction.status_update", "interaction_id": stored.get("id"),
                       "status": "in_progress", "event_id": "1"})
    events += replay(list(stored.get("steps") or []), after)
    if after < (3,):
        events.append({"event_type": "interaction.status_update", "interaction_id": stored.get("id"),
                       "status": status, "event_id": "3"})
    if after < (4,):
        done = {**shell, "status": status}
        if stored.get("usage") is not None:
            done["usage"] = stored["usage"]
        events.append({"event_type": "interaction.completed", "interaction": done, "event_id": "4"})
    return b"".join(sse(e) for e in events)

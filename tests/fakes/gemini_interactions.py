"""The fake Google upstream's Interactions API (``/{v}/interactions``), mounted by
``FakeGemini``: create (unary, SSE stream with ``event:`` lines, ``store``,
``previous_interaction_id`` held upstream), get (also as a replayed stream), cancel and
delete, with Google's string-coded error envelope.

The model answers ``"echo: " + <last user text>`` one word per delta; usage counts
words (input: every text in the conversation). Faults are queued with
:meth:`GeminiInteractionsFake.script_interaction`: an error status (429 with RetryInfo and
Retry-After), an ``error`` event after N events, a connection cut after N events, scripted output
steps (a thought with its signature, a function call) for a unary answer, or a
delay before answering (a client that leaves during it counts in ``disconnects``).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

_PATH = re.compile(r"/(v1beta|v1|v1alpha)/interactions(?:/([^/]+?))?(/cancel|:cancel)?")
CODES = {400: "invalid_argument", 403: "permission_denied", 404: "not_found", 429: "resource_exhausted",
         500: "internal", 503: "unavailable", 504: "deadline_exceeded"}
FIELDS = {"model", "agent", "input", "system_instruction", "tools", "generation_config", "stream",
          "background", "previous_interaction_id", "store", "response_format", "response_mime_type",
          "response_modalities", "safety_settings", "service_tier", "cached_content", "labels",
          "continuation_token", "environment", "webhook_config", "agent_config"}


@dataclass
class InteractionFault:
    status: int = 200  # != 200: answered with the error envelope at once
    message: str = ""
    retry_delay: str | None = None  # 429: RetryInfo.retryDelay and Retry-After
    error_after: int | None = None  # a stream's ``error`` event after N events
    cut_after: int | None = None  # a stream's connection aborted after N events
    event_delay: float = 0.0
    steps: list[JSON] | None = None  # the output steps of a unary answer (else the echo)
    status_as: str | None = None  # with ``steps``: the interaction's status
    delay: float = 0.0  # seconds before answering; a client gone meanwhile counts as a disconnect


def interaction_error(status: int, message: str, details: list[JSON] | None = None) -> JSON:
    err: JSON = {"code": CODES.get(status, "unknown"), "message": message}
    if details:
        err["details"] = details
    return {"error": err}


def _response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(obj).encode(), status=status,
                        headers={"Content-Type": "application/json; charset=UTF-8", **(headers or {})})


def _texts(steps: list[JSON]) -> list[str]:
    return [str(c.get("text", "")) for s in steps if isinstance(s, dict)
            for c in s.get("content") or () if isinstance(c, dict) and c.get("type", "text") == "text"]


def _as_steps(value: Any) -> list[JSON] | None:
    if isinstance(value, str):
        return [{"type": "user_input", "content": [{"type": "text", "text": value}]}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, dict) and "type" in v and v["type"] in ("text", "image", "audio", "video", "document")
           for v in value):
        return [{"type": "user_input", "content": value}]
    if all(isinstance(v, dict) and isinstance(v.get("type"), str) for v in value):
        return value
    return None


class GeminiInteractionsFake:
    """State and handlers; ``FakeGemini`` calls :meth:`_interactions_route` first."""

    def _reset_interactions(self) -> None:
        self.interactions: dict[str, JSON] = {}  # id -> {"obj", "conversation", "input"}
        self.interaction_faults: deque[InteractionFault] = deque()

    def script_interaction(self, **fault: Any) -> None:
        """Queue a fault for the next create (see :class:`InteractionFault`)."""
        self.interaction_faults.append(InteractionFault(**fault))

    async def _interactions_route(self, request: web.Request, path: str, body: bytes) -> web.StreamResponse | None:
        m = _PATH.fullmatch(path)
        if m is None:
            return None
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key not in self.api_keys:  # type: ignore[attr-defined]
            if not key:
                return _response(interaction_error(403, "Method doesn't allow unregistered callers."), 403)
            return _response(interaction_error(400, "API key not valid. Please pass a valid API key.", [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com"}]), 400)
        interaction_id, cancel = m.group(2), m.group(3)
        if interaction_id is None:
            if request.method != "POST":
                return _response(interaction_error(404, f"{path} not found"), 404)
            return await self._create_interaction(request, body)
        found = self.interactions.get(interaction_id)
        if found is None:
            return _response(interaction_error(404, f"Interaction {interaction_id} not found."), 404)
        if cancel:
            return _response(interaction_error(400, "Only background interactions can be cancelled."), 400)
        if request.method == "DELETE":
            del self.interactions[interaction_id]
            return _response({})
        if request.method == "GET":
            if request.query.get("stream") == "true":
                return await self._write_events(request, self._events(found["obj"]), InteractionFault())
            return _response({**found["obj"], "steps": found["input"] + found["obj"]["steps"]})
        return _response(interaction_error(404, f"{path} not found"), 404)

    async def _create_interaction(self, request: web.Request, body: bytes) -> web.StreamResponse:
        try:
            req = json.loads(body)
        except ValueError:
            return _response(interaction_error(400, "Invalid JSON payload received."), 400)
        if not isinstance(req, dict):
            return _response(interaction_error(400, "Invalid JSON payload received."), 400)
        for name in req:
            if name not in FIELDS:
                return _response(interaction_error(400, f'Invalid JSON payload received. Unknown name "{name}".'), 400)
        model = req.get("model")
        if not isinstance(model, str) or model.removeprefix("models/") not in self._models:  # type: ignore[attr-defined]
            return _response(interaction_error(404, f"Model {model} is not found."), 404)
        fault = self.interaction_faults.popleft() if self.interaction_faults else InteractionFault()
        if fault.delay:
            try:
                await asyncio.sleep(fault.delay)
            except asyncio.CancelledError:
                self._note_disconnect()  # type: ignore[attr-defined]
                raise
        if fault.status != 200:
            details, headers = [], {}
            if fault.retry_delay is not None:
                details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": fault.retry_delay}]
                headers = {"Retry-After": str(int(float(fault.retry_delay.rstrip("s"))))}
            return _response(interaction_error(fault.status, fault.message or "Error"), fault.status, headers) \
                if not details else _response(interaction_error(fault.status, fault.message or "Quota exceeded.",
                                                                 details), fault.status, headers)
        history: list[JSON] = []
        previous = req.get("previous_interaction_id")
        if previous is not None:
            held = self.interactions.get(str(previous))
            if held is None:
                return _response(interaction_error(404, f"Interaction {previous} not found."), 404)
            history = held["conversation"]
        given = _as_steps(req.get("input")) if req.get("input") is not None else []
        if given is None:
            return _response(interaction_error(400, "Invalid value at 'input'."), 400)
        conversation = history + given
        last_user = next((s for s in reversed(conversation) if s.get("type") == "user_input"), {})
        words = ("echo: " + " ".join(_texts([last_user]))).split()
        cfg = req.get("generation_config") or {}
        limit = cfg.get("max_output_tokens")
        status = "completed"
        if isinstance(limit, int) and 0 < limit < len(words):
            words, status = words[:limit], "incomplete"
        text = " ".join(words)
        prompt = max(1, sum(len(t.split()) for t in [*_texts(conversation), str(req.get("system_instruction") or "")]))
        usage = {"total_input_tokens": prompt, "total_output_tokens": len(words), "total_thought_tokens": 0,
                 "total_cached_tokens": 0, "total_tool_use_tokens": 0, "total_tokens": prompt + len(words),
                 "input_tokens_by_modality": [{"modality": "text", "tokens": prompt}],
                 "output_tokens_by_modality": [{"modality": "text", "tokens": len(words)}]}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        steps = [{"type": "model_output", "content": [{"type": "text", "text": text}]}]
        if fault.steps is not None:
            steps, status = fault.steps, fault.status_as or status
        obj: JSON = {"id": "v1_" + secrets.token_urlsafe(18), "object": "interaction", "model": model,
                     "status": status, "created": now, "updated": now, "steps": steps, "usage": usage}
        if previous is not None:
            obj["previous_interaction_id"] = previous
        if req.get("store") is not False:
            self.interactions[obj["id"]] = {"obj": obj, "conversation": conversation + steps, "input": given}
        if req.get("stream") is True:
            return await self._write_events(request, self._events(obj, words), fault)
        return _response(obj)

    @staticmethod
    def _events(obj: JSON, words: list[str] | None = None) -> list[JSON]:
        shell = {k: obj[k] for k in ("id", "object", "model", "created")}
        if words is None:
            words = str(obj["steps"][0]["content"][0]["text"]).split()
        events: list[JSON] = [
            {"event_type": "interaction.created", "interaction": {**shell, "status": "in_progress"}},
            {"event_type": "interaction.status_update", "interaction_id": obj["id"], "status": "in_progress"},
            {"event_type": "step.start", "index": 0, "step": {"type": "model_output"}},
        ]
        for i, word in enumerate(words):
            events.append({"event_type": "step.delta", "index": 0,
                           "delta": {"type": "text", "text": word if i == 0 else " " + word}})
        events += [
            {"event_type": "step.stop", "index": 0},
            {"event_type": "interaction.status_update", "interaction_id": obj["id"], "status": obj["status"]},
            {"event_type": "interaction.completed",
             "interaction": {**shell, "status": obj["status"], "usage": obj["usage"], "updated": obj["updated"]}},
        ]
        for n, event in enumerate(events):
            event["event_id"] = f"evt_{n}"
        return events

    async def _write_events(self, request: web.Request, events: list[JSON], fault: InteractionFault) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for n, event in enumerate(events):
                if n == fault.cut_after:
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                if n == fault.error_after:
                    event = {"event_type": "error", "error": {"code": "internal", "message": "Internal error."}}
                if n and fault.event_delay:
                    await asyncio.sleep(fault.event_delay)
                await resp.write(f"event: {event['event_type']}\ndata: {json.dumps(event)}\n\n".encode())
                if n == fault.error_after:
                    break
            await resp.write_eof()
        except ConnectionResetError:
            self._note_disconnect()  # type: ignore[attr-defined]
        return resp

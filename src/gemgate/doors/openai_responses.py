"""The OpenAI Responses door: ``POST /v1/responses`` (unary and streamed),
``GET`` / ``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items`` and
``POST /v1/responses/compact`` (:mod:`gemgate.translate.responses_compact`: one billed
model call), in the Responses protocol as the openai SDKs and Codex CLI call it.

Requests are translated into the canonical Gemini form (:mod:`gemgate.translate.responses_request`)
and served like any other model call; answers are rendered as output items
(:mod:`gemgate.translate.responses_output`). With ``store`` (the default) the response and
the conversation through it are kept for the caller's key
(:mod:`gemgate.doors.openai_responses_store`), so a later request can continue it with
``previous_response_id``; Codex sends ``store: false`` and replays the whole input, with
Gemini's thought signatures riding in reasoning items' ``encrypted_content``. Errors use
OpenAI's envelope; after a stream began, an ``error`` event and ``response.failed``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Engine

from gemgate.asgi import SSE_TYPE, Request
from gemgate.doors.openai_errors import openai_error_body, openai_status
from gemgate.doors.openai_responses_store import ResponseStore, page_items
from gemgate.doors.remote_media import RemoteMedia
from gemgate.errors import GatewayError, InvalidArgument, NotFound
from gemgate.pipeline.auth import extract_key
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.door import Answer, Endpoint, ModelEntry, ModelLookup
from gemgate.store.conversations import new_id
from gemgate.translate.responses_compact import (
    check_compact,
    compact_request,
    compacted,
    summary_text,
)
from gemgate.translate.responses_items import InputReader
from gemgate.translate.responses_output import OutputBuilder, new_item_id, usage_to_responses
from gemgate.translate.responses_request import History, check_top_level, read_request
from gemgate.types import normalise, parse_json
from gemgate.types.canonical import CanonicalRequest, Chunk
from gemgate.types.validate import check_generate

OPERATIONS = frozenset({"responses.get", "responses.delete", "responses.input_items", "responses.cancel"})


class ResponsesDoor:
    name = "openai_responses"
    operations = OPERATIONS

    def __init__(self, engine: Engine, *, allow_remote_media: bool = False) -> None:
        self.store = ResponseStore(engine)
        self._media = RemoteMedia(enabled=allow_remote_media)

    def credential(self, req: Request) -> str | None:
        return extract_key(req.headers, req.query)

    # ------------------------------------------------------------ requests

    async def parse(
        self, req: Request, endpoint: Endpoint, body: bytes, lookup: ModelLookup
    ) -> CanonicalRequest:
        if endpoint.operation not in ("responses.create", "responses.compact"):
            raise NotFound(f"Unknown endpoint {endpoint.operation}.")
        data = parse_json(body)
        if not isinstance(data, dict):
            raise InvalidArgument("The request body must be a JSON object.")
        compact = endpoint.operation == "responses.compact"
        warnings = check_compact(data) if compact else check_top_level(data)
        model = str(data["model"])
        info = lookup(model)
        options: dict[str, Any] = {
            "model": model,
            "client": data,
            "warnings": [] if compact else warnings,
            "id": new_id("resp_"),
            "created": int(time.time()),
            "store": not compact and data.get("store") is not False,
            "input": _input_items(data.get("input")),
            "compact": compact,
            "mixed_tools": bool(info is not None and info.mixed_tools),
        }
        creq = CanonicalRequest(
            model=model,
            method="streamGenerateContent" if data.get("stream") and not compact else "generateContent",
            body={},
            client_bytes=len(body),
            options=options,
        )
        if data.get("previous_response_id") is None:
            self._translate(creq, None)  # else once the caller's stored history is loaded
        return creq

    def _translate(self, creq: CanonicalRequest, history: History | None) -> None:
        o = creq.options
        if o["compact"]:
            request = normalise("GenerateContentRequest", compact_request(o["client"], history))
        else:
            translated = read_request(o["client"], history, mixed_tools=o["mixed_tools"])
            request = normalise("GenerateContentRequest", translated.request)
            o["history"] = History(request["contents"], translated.history.system)
            o["warnings"].extend(translated.warnings)
            o["tools"] = translated.tools
        check_generate(request)
        creq.body = request
        if _names_remote_media(request):
            creq.prepare = self._media.resolve

    async def attach(self, ctx: RequestContext, creq: CanonicalRequest) -> None:
        assert ctx.key is not None
        creq.options["key_id"] = ctx.key.id
        previous = creq.options["client"].get("previous_response_id")
        if previous is None:
            return
        turn = await self.store.load(previous, ctx.key.id)
        if turn is None:
            raise NotFound(
                f"Previous response with id '{previous}' not found.",
                reason="previous_response_not_found",
                param="previous_response_id",
            )
        self._translate(creq, History.from_json(orjson.loads(turn.history)))

    # ------------------------------------------------------------ answers

    def render(self, creq: CanonicalRequest, request_id: str, answers: Sequence[Answer]) -> bytes:
        o = creq.options
        if o["compact"]:
            reply = answers[0].reply.json()
            return orjson.dumps(compacted(
                response_id=o["id"], created=o["created"], items=o["input"],
                summary=summary_text(reply), item_id=new_item_id("cmp"),
                usage=usage_to_responses(reply.get("usageMetadata")),
            ))
        builder = OutputBuilder(o.get("tools"))
        builder.feed(answers[0].reply.json())
        builder.close()
        response = response_object(creq, builder)
        creq.options["final"] = (response, builder)
        return orjson.dumps(response)

    async def keep(self, ctx: RequestContext, creq: CanonicalRequest) -> None:
        final = creq.options.get("final")
        if final is not None:
            await self.save(creq, *final)

    async def save(self, creq: CanonicalRequest, response: dict[str, Any], builder: OutputBuilder) -> None:
        """Keep a finished response for its key (unless the request said ``store: false``)."""
        o = creq.options
        if not o["store"] or "key_id" not in o:
            return
        history: History = o["history"]
        reader = InputReader()
        reader.read(builder.items)  # output items are the input items that replay them
        model_turn = reader.finish()
        await self.store.save(
            key_id=o["key_id"],
            response=response,
            input_items=o["input"],
            history=History([*history.contents, *model_turn], history.system).to_json(),
        )

    def encoder(self, creq: CanonicalRequest, request_id: str) -> ResponsesStream:
        return ResponsesStream(self, creq)

    def render_error(self, err: GatewayError) -> tuple[int, bytes]:
        if isinstance(err, NotFound) and "model" in err.metadata:
            err = NotFound(
                f"The model `{err.metadata['model']}` does not exist or you do not have access to it.",
                reason="model_not_found",
            )
        return openai_status(err), orjson.dumps(openai_error_body(err))

    def render_models(
        self, endpoint: Endpoint, req: Request, models: Sequence[ModelEntry]
    ) -> dict[str, Any]:
        raise NotFound(f"Unknown endpoint {endpoint.operation}.")

    # ------------------------------------------------------------ stored responses

    async def operate(self, endpoint: Endpoint, req: Request, ctx: RequestContext) -> tuple[int, bytes]:
        assert ctx.key is not None
        response_id = endpoint.params["response_id"]
        op = endpoint.operation
        if op == "responses.delete":
            await self.store.delete(response_id, ctx.key.id)
            return 200, orjson.dumps({"id": response_id, "object": "response", "deleted": True})
        stored = await self.store.body(response_id, ctx.key.id)
        if op == "responses.input_items":
            return 200, orjson.dumps(page_items(list(stored.get("input") or []), req.query))
        if op == "responses.cancel":
            raise InvalidArgument("Only background responses can be cancelled.")
        return 200, orjson.dumps(stored["response"])


class ResponsesStream:
    """Canonical chunks become Responses events, each with its ``sequence_number``."""

    content_type = SSE_TYPE

    def __init__(self, door: ResponsesDoor, creq: CanonicalRequest) -> None:
        self._door = door
        self._creq = creq
        self._builder = OutputBuilder(creq.options.get("tools"))
        self._sequence = 0
        self._started = False
        self._tail = b""

    def _events(self, events: list[dict[str, Any]]) -> bytes:
        out = []
        for event in events:
            event["sequence_number"] = self._sequence
            self._sequence += 1
            out.append(b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")
        return b"".join(out)

    def _start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        snapshot = response_object(self._creq, self._builder, status="in_progress")
        return [
            {"type": "response.created", "response": snapshot},
            {"type": "response.in_progress", "response": snapshot},
        ]

    def chunk(self, chunk: Chunk) -> bytes:
        return self._events([*self._start(), *self._builder.feed(chunk.json())])

    async def keep(self) -> None:
        """The answer is complete: store it, and hold its closing events for ``end``."""
        events = [*self._start(), *self._builder.close()]
        response = response_object(self._creq, self._builder)
        await self._door.save(self._creq, response, self._builder)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        events.append({"type": kind, "response": response})
        self._tail = self._events(events)

    def end(self) -> bytes:
        return self._tail

    def error(self, err: GatewayError) -> bytes:
        body = openai_error_body(err)["error"]
        code = body.get("code") or body.get("type") or "server_error"
        failed = response_object(self._creq, self._builder, status="failed")
        failed["error"] = {"code": code, "message": body["message"]}
        events = [*self._start()]
        events.append({"type": "error", "code": code, "message": body["message"], "param": body.get("param")})
        events.append({"type": "response.failed", "response": failed})
        return self._events(events)


def response_object(
    creq: CanonicalRequest, builder: OutputBuilder, *, status: str | None = None
) -> dict[str, Any]:
    """The Response object, as it stands (``status`` overrides the answer's own)."""
    o = creq.options
    client: dict[str, Any] = o["client"]
    final, incomplete = builder.status()
    given = client.get("reasoning")
    reasoning: dict[str, Any] = given if isinstance(given, dict) else {}
    out: dict[str, Any] = {
        "id": o["id"],
        "object": "response",
        "created_at": o["created"],
        "status": status or final,
        "background": False,
        "error": None,
        "incomplete_details": incomplete if status is None else None,
        "instructions": client.get("instructions"),
        "max_output_tokens": client.get("max_output_tokens"),
        "model": o["model"],
        "output": builder.items if status is None else [],
        "parallel_tool_calls": client.get("parallel_tool_calls", True),
        "previous_response_id": client.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": o["store"],
        "temperature": client.get("temperature", 1.0),
        "text": client.get("text") or {"format": {"type": "text"}},
        "tool_choice": client.get("tool_choice", "auto"),
        "tools": client.get("tools") or [],
        "top_p": client.get("top_p", 1.0),
        "truncation": client.get("truncation") or "disabled",
        "usage": usage_to_responses(builder.usage) if status is None else None,
        "user": client.get("user"),
        "metadata": client.get("metadata") or {},
    }
    if o["warnings"]:
        out["warnings"] = o["warnings"]
    return out


def _input_items(value: Any) -> list[dict[str, Any]]:
    """The request's input as items with ids (what ``input_items`` lists)."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list):
        return []
    items = []
    for item in value:
        if not isinstance(item, dict):
            continue
        item = {"type": "message", **item} if "role" in item and "type" not in item else dict(item)
        if isinstance(item.get("content"), str):
            kind = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
        if not item.get("id"):
            prefix = {"message": "msg", "function_call": "fc", "reasoning": "rs"}.get(str(item.get("type")), "item")
            item["id"] = new_item_id(prefix)
        items.append(item)
    return items


def _names_remote_media(request: dict[str, Any]) -> bool:
    """Whether any part names media by http(s) URL (fetched after admission)."""
    return any(
        str((part.get("fileData") or {}).get("fileUri", "")).startswith(("http://", "https://"))
        for content in request.get("contents") or ()
        for part in content.get("parts") or ()
    )

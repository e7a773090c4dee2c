"""The Interactions API door: ``POST {prefix}/{version}/interactions`` (unary, streamed, in
the background), ``GET .../interactions/{id}`` (also as a stream, resumed after
``last_event_id``), ``POST .../interactions/{id}/cancel`` and ``DELETE``, as the
google-genai SDK's ``client.interactions`` calls them.

Keys come as for the Gemini door. The gateway keeps every interaction (per key, unless
``store: false``) with its conversation as steps, so ``previous_interaction_id`` works on
every channel: on a Google channel the request is forwarded to the upstream's
Interactions API with the conversation in ``input``; on any other it is translated to the
canonical form (:mod:`gemgate.translate.interactions_request`) and back. Every model call
runs through the serve path (admission, attempts, metering, one usage record). Errors use
the Interactions envelope ``{"error": {"code": "invalid_argument", "message": ...}}``, and
an ``error`` event once a stream has begun.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from gemgate.asgi import (
    JSON_TYPE,
    SSE_TYPE,
    DisconnectWatch,
    Request,
    Send,
    send_bytes,
    send_chunk,
    start_stream,
    until_disconnect,
)
from gemgate.billing import format_usd
from gemgate.doors.gemini_interactions_runs import RUNNING, Runs, expired
from gemgate.doors.gemini_interactions_stream import InteractionStream, replayed
from gemgate.errors import GatewayError, InvalidArgument, NotFound, as_gateway_error
from gemgate.pipeline.auth import extract_key
from gemgate.pipeline.authorize import check_key, check_model
from gemgate.pipeline.capabilities import check_capabilities
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.door import Answer
from gemgate.pipeline.route import Route
from gemgate.resources.binding import file_id_of
from gemgate.store import conversations
from gemgate.store.conversations import INTERACTION, Turn
from gemgate.translate.interactions_events import position, sse
from gemgate.translate.interactions_request import (
    INTERACTIONS,
    Untranslatable,
    check_fields,
    input_steps,
    to_canonical,
)
from gemgate.translate.interactions_response import (
    interaction,
    interaction_usage,
    now_text,
    reply_steps,
    status_of,
)
from gemgate.types import normalise, parse_json
from gemgate.types.canonical import CanonicalRequest
from gemgate.types.validate import check_generate

log = logging.getLogger("gemgate.interactions")

POLL_S = 0.25


def error_body(err: GatewayError) -> dict[str, Any]:
    return {"error": {"code": err.status.lower(), "message": err.message}}


def error_event(err: GatewayError) -> bytes:
    return sse({"event_type": "error", **error_body(err)})


def named_file_contents(steps: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(step index, content index, file id) of each content whose ``uri`` names a file
    uploaded to the gateway (``files/{id}``, bare or as a URL)."""
    found: list[tuple[int, int, str]] = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("type") not in ("user_input", "model_output"):
            continue
        for j, content in enumerate(step.get("content") or ()):
            ident = file_id_of(content.get("uri")) if isinstance(content, dict) else None
            if ident is not None:
                found.append((i, j, ident))
    return found


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


class InteractionsDoor:
    name = "interactions"

    def __init__(self, serve: Any, engine: Any) -> None:
        self.serve = serve
        self.engine = engine
        self.runs = Runs(engine)
        with contextlib.suppress(RuntimeError):  # built at startup, in the running loop
            asyncio.get_running_loop()
            self.runs.start_sweeping()

    async def aclose(self) -> None:
        await self.runs.aclose()

    # --- dispatch ------------------------------------------------------------------------

    async def __call__(self, operation: str, params: dict[str, str], req: Request, send: Send) -> None:
        ctx = RequestContext(door=self.name, method=f"interactions.{operation}", client_ip=req.client_ip)
        try:
            ctx.key = await self.serve.keys.authenticate(extract_key(req.headers, req.query))
            check_key(ctx.key, req.client_ip)
            if operation == "create":
                await self._create(ctx, params, req, send)
            elif operation == "get":
                await self._get(ctx, params["id"], req, send)
            elif operation == "cancel":
                await self._cancel(ctx, params["id"], send)
            elif operation == "delete":
                await self._delete(ctx, params["id"], send)
            else:
                raise NotFound(f"The requested URL {req.path} was not found on this server.")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._send_error(send, ctx, exc)

    async def _send_error(self, send: Send, ctx: RequestContext, exc: BaseException) -> None:
        err = as_gateway_error(exc, ctx.request_id)
        await send_bytes(send, err.code, orjson.dumps(error_body(err)), JSON_TYPE,
                         [*self._headers(ctx), *err.headers()])

    @staticmethod
    def _headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
        return [(b"x-gemgate-request-id", ctx.request_id.encode())]

    # --- the store -------------------------------------------------------------------------

    async def _load(self, ctx: RequestContext, interaction_id: str) -> Turn:
        assert ctx.key is not None
        turn = await asyncio.to_thread(conversations.load, self.engine, INTERACTION, interaction_id, ctx.key.id)
        if turn is None:
            raise NotFound(f"Interaction {interaction_id} was not found.")
        if expired(turn) and self.runs.running(interaction_id) is None and await self.runs.fail_lost(turn):
            # Its lease ran out: the replica that ran it is gone.
            return await self._load(ctx, interaction_id)
        return turn

    @staticmethod
    def _turn(ctx: RequestContext, obj: dict[str, Any], conversation: list[dict[str, Any]],
              given: list[dict[str, Any]], created: datetime) -> Turn:
        assert ctx.key is not None
        return Turn(
            id=obj["id"], kind=INTERACTION, key_id=ctx.key.id, model=obj["model"],
            previous_id=obj.get("previous_interaction_id"), status=obj["status"], body=orjson.dumps(obj),
            history=orjson.dumps({"steps": conversation, "input": given}), created_at=created,
            expires_at=created + conversations.DEFAULT_TTL,
        )

    async def _save(self, ctx: RequestContext, obj: dict[str, Any], conversation: list[dict[str, Any]],
                    given: list[dict[str, Any]], created: datetime) -> None:
        turn = self._turn(ctx, obj, conversation, given, created)
        await asyncio.to_thread(conversations.save, self.engine, turn)

    async def _end_run(self, ctx: RequestContext, obj: dict[str, Any], conversation: list[dict[str, Any]],
                       given: list[dict[str, Any]], created: datetime) -> bool:
        """Store a background run's end, only while it is still running (never over a
        cancel or a sweep another replica stored); whether it was stored."""
        turn = self._turn(ctx, obj, conversation, given, created)
        return await asyncio.to_thread(conversations.save_if, self.engine, turn, RUNNING)

    # --- create ----------------------------------------------------------------------------

    async def _create(self, ctx: RequestContext, params: dict[str, str], req: Request, send: Send) -> None:
        assert ctx.key is not None
        body = await req.body(self.serve.max_body)
        data = parse_json(body)
        if not isinstance(data, dict):
            raise InvalidArgument("The request body must be a JSON object.")
        check_fields(data)
        model = str(data["model"]).removeprefix("models/")
        stream = data.get("stream") is True
        background = data.get("background") is True
        store = data.get("store") is not False
        if background and not store:
            raise InvalidArgument.field("store", "a background interaction must be stored")
        previous = data.get("previous_interaction_id")
        history: list[dict[str, Any]] = []
        if previous:
            turn = await self._load(ctx, str(previous))
            if turn.status == RUNNING:
                raise InvalidArgument.field("previous_interaction_id", f"interaction {previous} is still running")
            history = list(orjson.loads(turn.history).get("steps") or [])
        given = input_steps(data["input"]) if data.get("input") is not None else []
        steps = history + given
        creq = self._canonical(data, body, steps, model, stream and not background, bool(previous), background)
        route = self._route(ctx, creq, params.get("version", "v1beta"))
        await self._bind(ctx, route, creq, steps, len(history))
        interaction_id = conversations.new_id("v1_")
        created = datetime.now(UTC)
        base = {"id": interaction_id, "model": model, "previous": previous, "created": now_text()}
        if background:
            await self._background(ctx, route, creq, base, steps, given, created, stream, send)
        elif stream:
            await self._stream(ctx, route, creq, base, steps, given, created, store, req, send)
        else:
            watch = DisconnectWatch(req)
            try:
                answer = await self.serve.answer(ctx, route, creq)
            except asyncio.CancelledError:
                if watch.fired():
                    return  # the client left: the upstream call is cancelled, its record settled
                raise
            finally:
                watch.stop()
            obj = self._result(answer, base)
            if store:
                await self._save(ctx, obj, steps + obj["steps"], given, created)
            headers = [*self._headers(ctx), (b"x-gemgate-cost-usd", format_usd(answer.cost_nanos).encode())]
            await send_bytes(send, 200, orjson.dumps(obj), JSON_TYPE, headers)

    def _canonical(self, data: dict[str, Any], body: bytes, steps: list[dict[str, Any]], model: str,
                   stream: bool, previous: bool, background: bool) -> CanonicalRequest:
        untranslated: InvalidArgument | None = None
        try:
            translated = to_canonical(data, steps)
        except Untranslatable as exc:
            # Only a Google channel can serve it: admit on the request's size.
            untranslated = exc
            translated = {"contents": [{"role": "user", "parts": [{"text": orjson.dumps(steps).decode()}]}]}
        if not translated.get("contents"):
            raise InvalidArgument.field("input", "is required")
        request = normalise("GenerateContentRequest", translated)
        check_generate(request)
        raw = body
        if previous or background:
            upstream = {k: v for k, v in data.items() if k not in ("previous_interaction_id", "background")}
            upstream["input"] = steps
            if background:
                upstream.pop("stream", None)
            raw = orjson.dumps(upstream)
        return CanonicalRequest(
            model=model,
            method="streamGenerateContent" if stream else "generateContent",
            body=request,
            protocol=INTERACTIONS,
            raw=raw,
            client_bytes=len(body),
            untranslated=untranslated,
        )

    def _route(self, ctx: RequestContext, creq: CanonicalRequest, version: str) -> Route:
        assert ctx.key is not None
        route: Route = self.serve.router.resolve(creq.model, creq.method, version)
        check_model(ctx.key, route.model_id)
        if not route.info.supports(creq.method):
            raise NotFound(f"models/{creq.model} is not found for API version {version}, or is not "
                           "supported for interactions.", metadata={"model": creq.model})
        ctx.route = route
        check_capabilities(route.info, creq.body)
        return route

    async def _bind(self, ctx: RequestContext, route: Route, creq: CanonicalRequest,
                    steps: list[dict[str, Any]], given_from: int) -> None:
        """Bind the gateway files the conversation names (``uri`` of a file uploaded here),
        as the Gemini door does: the key must own them, the model must read their type
        (else the input's content is named), and each channel gets its own copy or the
        bytes inline. Such a request is always translated: the client's bytes name the
        gateway's files, which no upstream knows."""
        resources = self.serve.resources
        named = named_file_contents(steps)
        if resources is None or not named:
            return
        assert ctx.key is not None
        if creq.untranslated is not None:
            raise InvalidArgument(f"An interaction naming files uploaded to this gateway must be translatable: "
                                  f"{creq.untranslated}")
        rows = await resources.files.referenced(ctx.key, sorted({ident for _i, _j, ident in named}))
        for i, j, ident in named:
            row = rows.get(ident)
            if i < given_from or row is None:
                continue  # history was checked when it was sent; a missing file is refused by bind
            if row.modality not in route.info.input_modalities:
                raise InvalidArgument.field(
                    f"input[{i - given_from}].content[{j}]",
                    f"model {route.model_id} cannot read files/{ident}: it takes "
                    f"{', '.join(route.info.input_modalities)} input, not {row.mime_type}",
                )
        await resources.bind(ctx.key, route, creq)

    @staticmethod
    def _result(answer: Answer, base: dict[str, Any]) -> dict[str, Any]:
        reply = answer.reply
        usage = interaction_usage(answer.usage)
        if reply.protocol == INTERACTIONS:
            upstream = reply.json()
            steps = [s for s in upstream.get("steps") or [] if isinstance(s, dict) and s.get("type") != "user_input"]
            status = str(upstream.get("status") or "completed")
        else:
            data = reply.json()
            steps = reply_steps(data)
            status = status_of(data, steps)
        return interaction(base["id"], base["model"], status, steps=steps, usage=usage,
                           created=base["created"], previous=base["previous"])

    # --- streams ---------------------------------------------------------------------------

    async def _stream(self, ctx: RequestContext, route: Route, creq: CanonicalRequest, base: dict[str, Any],
                      steps: list[dict[str, Any]], given: list[dict[str, Any]], created: datetime,
                      store: bool, req: Request, send: Send) -> None:
        out = InteractionStream(base["id"], base["model"], base["created"], base["previous"])
        chunks = self.serve.stream(ctx, route, creq)
        saved = False

        async def save() -> None:
            nonlocal saved
            if store and not saved:
                saved = True
                obj = out.result()
                await self._save(ctx, obj, steps + obj["steps"], given, created)

        async def relay() -> None:
            try:
                first = await anext(chunks, None)
            except GatewayError as exc:
                await self._send_error(send, ctx, exc)
                return
            await start_stream(send, SSE_TYPE, self._headers(ctx))
            try:
                pending = first
                while pending is not None:
                    data = out.chunk(pending)
                    if out.completed:
                        await save()  # stored before the client hears it completed
                    if data:
                        await send_chunk(send, data)
                    pending = await anext(chunks, None)
                if not out.completed:
                    await send_chunk(send, out.closing(None))
                    tail = out.completed_event()
                    await save()
                    await send_chunk(send, tail)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = as_gateway_error(exc, ctx.request_id)
                out.status = "failed"
                await save()
                await send_chunk(send, error_event(err), more=False)
                return
            await send_chunk(send, b"", more=False)

        try:
            await until_disconnect(req.receive, relay())
        finally:
            await chunks.aclose()
            if not saved and out.steps.steps:
                # The client went away mid-stream: keep what was generated.
                out.status = "cancelled"
                await save()

    # --- background ------------------------------------------------------------------------

    async def _background(self, ctx: RequestContext, route: Route, creq: CanonicalRequest, base: dict[str, Any],
                          steps: list[dict[str, Any]], given: list[dict[str, Any]], created: datetime,
                          stream: bool, send: Send) -> None:
        start = interaction(base["id"], base["model"], RUNNING, created=base["created"], previous=base["previous"])
        await self._save(ctx, start, steps, given, created)

        async def work() -> None:
            try:
                answer = await self.serve.answer(ctx, route, creq)
            except asyncio.CancelledError:
                obj = {**start, "status": "cancelled", "updated": now_text(), "steps": []}
                await asyncio.shield(self._end_run(ctx, obj, steps, given, created))
                raise
            except Exception as exc:
                err = as_gateway_error(exc, ctx.request_id)
                obj = {**start, "status": "failed", "updated": now_text(), "steps": [],
                       "errors": [error_body(err)["error"]]}
                await self._end_run(ctx, obj, steps, given, created)
                return
            obj = self._result(answer, base)
            if not await self._end_run(ctx, obj, steps + obj["steps"], given, created):
                log.info("background interaction %s ended after it was cancelled: its end is not stored",
                         base["id"])

        assert ctx.key is not None
        self.runs.start(base["id"], ctx.key.id, work)
        if not stream:
            await send_bytes(send, 200, orjson.dumps(start), JSON_TYPE, self._headers(ctx))
            return
        await start_stream(send, SSE_TYPE, self._headers(ctx))
        await self._follow(ctx, base["id"], (), send)

    async def _follow(self, ctx: RequestContext, interaction_id: str, after: tuple[int, ...], send: Send) -> None:
        """Stream an interaction's events after ``after``, waiting for it to end first."""
        shell = {"id": interaction_id, "object": "interaction", "status": RUNNING}
        early = b""
        if after < (0,):
            early += sse({"event_type": "interaction.created", "interaction": shell, "event_id": "0"})
        if after < (1,):
            early += sse({"event_type": "interaction.status_update", "interaction_id": interaction_id,
                          "status": RUNNING, "event_id": "1"})
            after = (1,)
        if early:
            await send_chunk(send, early)
        turn = await self._finished(ctx, interaction_id)
        await send_chunk(send, replayed(orjson.loads(turn.body), after), more=False)

    async def _finished(self, ctx: RequestContext, interaction_id: str) -> Turn:
        await self.runs.wait(interaction_id)
        while True:
            turn = await self._load(ctx, interaction_id)
            if turn.status != RUNNING:
                return turn
            await asyncio.sleep(POLL_S)  # running on another replica

    # --- get, cancel, delete ---------------------------------------------------------------

    @staticmethod
    def _stored(turn: Turn, include_input: bool = False) -> dict[str, Any]:
        """The stored interaction as GET shows it: its input step(s), then its output."""
        obj = orjson.loads(turn.body)
        history = orjson.loads(turn.history)
        given = list(history.get("input") or [])
        obj["steps"] = given + list(obj.get("steps") or [])
        if include_input:
            obj["input"] = given
        return obj

    async def _get(self, ctx: RequestContext, interaction_id: str, req: Request, send: Send) -> None:
        turn = await self._load(ctx, interaction_id)
        if not _flag(req.query.get("stream")):
            obj = self._stored(turn, _flag(req.query.get("include_input")))
            await send_bytes(send, 200, orjson.dumps(obj), JSON_TYPE, self._headers(ctx))
            return
        raw = req.query.get("last_event_id")
        after = position(raw) if raw else ()
        if after is None:
            raise InvalidArgument.field("last_event_id", f"{raw!r} is not an event id of this interaction")
        await start_stream(send, SSE_TYPE, self._headers(ctx))
        if turn.status == RUNNING:
            await self._follow(ctx, interaction_id, after, send)
            return
        await send_chunk(send, replayed(orjson.loads(turn.body), after), more=False)

    async def _cancel(self, ctx: RequestContext, interaction_id: str, send: Send) -> None:
        turn = await self._load(ctx, interaction_id)
        if turn.status != RUNNING:
            raise InvalidArgument(f"Interaction {interaction_id} is not running: only a running background "
                                  "interaction can be cancelled.")
        if not await self.runs.cancel(interaction_id):
            # Running on another replica: stored as cancelled here (unless it ended first);
            # its owner reads that as it renews its lease and stops the run.
            obj = {**orjson.loads(turn.body), "status": "cancelled", "updated": now_text()}
            cancelled = dataclasses.replace(turn, status="cancelled", body=orjson.dumps(obj))
            await asyncio.to_thread(conversations.save_if, self.engine, cancelled, RUNNING)
        turn = await self._load(ctx, interaction_id)
        await send_bytes(send, 200, orjson.dumps(self._stored(turn)), JSON_TYPE, self._headers(ctx))

    async def _delete(self, ctx: RequestContext, interaction_id: str, send: Send) -> None:
        assert ctx.key is not None
        await self._load(ctx, interaction_id)
        await self.runs.cancel(interaction_id)
        await asyncio.to_thread(conversations.remove, self.engine, INTERACTION, interaction_id, ctx.key.id)
        await send_bytes(send, 200, b"{}", JSON_TYPE, self._headers(ctx))


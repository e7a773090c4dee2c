"""serve(): the one place the stages run, for every door, unary and streamed.

    authenticate -> authorize -> route -> admit -> attempts -> meter -> settle
    key cache       key, model   model ->  limits +  channel 1, 2, ...
                                 channels  budget    until one answers

A door parses the request into the canonical form and renders what comes back; this
module owns everything between. Every call that passes admission ends with exactly one
usage record (committed before the answer's final bytes), whether it succeeds, fails, or
its client goes away; failed attempts are kept on that record and never billed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from gemgate.asgi import (
    JSON_TYPE,
    DisconnectWatch,
    Request,
    Send,
    send_bytes,
    send_chunk,
    start_stream,
    until_disconnect,
)
from gemgate.billing import format_usd
from gemgate.catalog import CatalogModel, Price
from gemgate.catalog.pricing import AppliedPrice, tier_name
from gemgate.errors import GatewayError, NotFound, as_gateway_error
from gemgate.limits.memory import Reservation
from gemgate.metrics import Metrics
from gemgate.pipeline.admit import Admission, embed_prompt
from gemgate.pipeline.attempts import AttemptLoop
from gemgate.pipeline.auth import KeyCache
from gemgate.pipeline.authorize import check_key, check_model, may_use
from gemgate.pipeline.capabilities import check_capabilities
from gemgate.pipeline.capture import BodyCapture
from gemgate.pipeline.context import RequestContext, new_request_id
from gemgate.pipeline.door import Answer, Door, Endpoint, ModelEntry, StreamEncoder
from gemgate.pipeline.meter import (
    Metered,
    StreamMeter,
    call_tier,
    count_text,
    estimated_metadata,
    meter,
    reply_text,
)
from gemgate.pipeline.route import Route, Router
from gemgate.pipeline.settle import Outcome, Settler
from gemgate.tokens import TokenCounter
from gemgate.types.canonical import GEMINI, CanonicalRequest, Chunk, Reply

log = logging.getLogger("gemgate.serve")

GENERATE = frozenset({"generateContent", "streamGenerateContent"})
# The Gemini API's answer header naming the service tier that served a call.
SERVICE_TIER_HEADER = b"x-gemini-service-tier"


class Serve:
    def __init__(
        self,
        *,
        keys: KeyCache,
        router: Router,
        admission: Admission,
        attempts: AttemptLoop,
        settler: Settler,
        counter: TokenCounter,
        max_body: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.keys = keys
        self.router = router
        self.admission = admission
        self.attempts = attempts
        self.settler = settler
        self.counter = counter
        self.max_body = max_body
        self.metrics = metrics
        # Binds requests that name gateway files or cached contents (set by the app).
        self.resources: Any = None

    # --- the entry point -----------------------------------------------------------------

    async def __call__(self, door: Door, endpoint: Endpoint, req: Request, send: Send) -> None:
        ctx = RequestContext(door=door.name, method=endpoint.operation, client_ip=req.client_ip)
        try:
            await self._authenticate(door, req, ctx)
            if endpoint.operation in ("models.list", "models.get"):
                await self._models(door, endpoint, req, send, ctx)
                return
            if endpoint.operation in getattr(door, "operations", ()):
                # The door's own stored objects (KeepsState): never a model call.
                status, body = await door.operate(endpoint, req, ctx)  # type: ignore[attr-defined]
                await send_bytes(send, status, body, JSON_TYPE, self._id_header(ctx))
                return
            await self._call(door, endpoint, req, send, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._send_error(door, send, ctx, exc)

    async def _authenticate(self, door: Door, req: Request, ctx: RequestContext) -> None:
        ctx.key = await self.keys.authenticate(door.credential(req))
        check_key(ctx.key, req.client_ip)

    def _route(self, ctx: RequestContext, model: str, method: str, version: str) -> Route:
        assert ctx.key is not None
        route = self.router.resolve(model, method, version)
        check_model(ctx.key, route.model_id)
        if not route.info.supports(method):
            raise NotFound(
                f"models/{model} is not found for API version {version}, or is not "
                f"supported for {method}. Call ListModels to see the list of available "
                "models and their supported methods.",
                metadata={"model": model},
            )
        ctx.route = route
        return route

    def _lookup(self, ctx: RequestContext, model: str) -> CatalogModel | None:
        route = self.router.find(model)
        if route is None or ctx.key is None or not may_use(ctx.key, route.model_id):
            return None
        return route.info

    # --- listings ------------------------------------------------------------------------

    async def _models(
        self, door: Door, endpoint: Endpoint, req: Request, send: Send, ctx: RequestContext
    ) -> None:
        key = ctx.key
        assert key is not None
        if endpoint.operation == "models.list":
            routes = [r for r in self.router.routes() if may_use(key, r.model_id)]
        else:
            found = self.router.find(endpoint.params["model"])
            routes = [found] if found is not None and may_use(key, found.model_id) else []
        entries = [ModelEntry(r.model_id, r.info, r.owner) for r in routes]
        body = door.render_models(endpoint, req, entries)
        await send_bytes(send, 200, orjson.dumps(body), JSON_TYPE, self._id_header(ctx))

    # --- model calls ---------------------------------------------------------------------

    async def _call(
        self, door: Door, endpoint: Endpoint, req: Request, send: Send, ctx: RequestContext
    ) -> None:
        params = endpoint.params
        version = params.get("version", "v1")
        route = None
        if "model" in params:  # the path names the model: route before reading the body
            route = self._route(ctx, params["model"], params["method"], version)
        body = await req.body(self.max_body)
        if ctx.key is not None and ctx.key.log_bodies:
            ctx.capture = BodyCapture(body)
        creq = await door.parse(req, endpoint, body, lambda m: self._lookup(ctx, m))
        attach = getattr(door, "attach", None)  # KeepsState: load what the request names
        if attach is not None:
            await attach(ctx, creq)
        ctx.method = creq.method if endpoint.operation == "model.call" else ctx.method
        if route is None:
            route = self._route(ctx, creq.model, creq.method, version)
        if self.resources is not None and ctx.key is not None and self.resources.names_any(creq):
            await self.resources.bind(ctx.key, route, creq)
        if creq.method in GENERATE:
            check_capabilities(route.info, creq.body)
        if creq.method == "countTokens":
            reply = await self._count_tokens(creq)
            answer = Answer(reply, meter(None, route.price).usage, 0)
            await send_bytes(
                send, 200, door.render(creq, ctx.request_id, [answer]), JSON_TYPE, self._id_header(ctx)
            )
        elif creq.stream:
            await self._stream(door, req, send, ctx, route, creq)
        else:
            await self._unary(door, req, send, ctx, route, creq)

    async def _count_tokens(self, creq: CanonicalRequest) -> Reply:
        """Counted here with the Gemma vocabulary and Google's media rules: never an
        upstream call, never billed."""
        inner = creq.body.get("generateContentRequest") or creq.body
        counted = await self.counter.count_request_async(inner, creq.references)
        data: dict[str, Any] = {"totalTokens": counted.total}
        cached = creq.references.get(inner.get("cachedContent") or "")
        if cached is not None:
            data["totalTokens"] += cached.tokens
            data["cachedContentTokenCount"] = cached.tokens
        details = [
            {"modality": modality, "tokenCount": count}
            for modality, count in counted.by_modality.items()
            if count
        ]
        if details:
            data["promptTokensDetails"] = details
        return Reply(body=orjson.dumps(data), data=data)

    # --- unary ---------------------------------------------------------------------------

    async def _unary(
        self,
        door: Door,
        req: Request,
        send: Send,
        ctx: RequestContext,
        route: Route,
        creq: CanonicalRequest,
    ) -> None:
        watch = DisconnectWatch(req)
        try:
            answers = []
            for i in range(creq.repeat):
                sub = ctx if i == 0 else _sub_context(ctx)
                answers.append(await self.answer(sub, route, creq))
        except asyncio.CancelledError:
            if watch.fired():
                return  # the client left; its record is settled in the background
            raise
        finally:
            watch.stop()
        cost = sum(a.cost_nanos for a in answers)
        headers = [*self._id_header(ctx), (b"x-gemgate-cost-usd", format_usd(cost).encode())]
        headers += _tier_header(answers[0].reply.service_tier if answers else None)
        rendered = door.render(creq, ctx.request_id, answers)
        keep = getattr(door, "keep", None)  # KeepsState: store the answer before it is sent
        if keep is not None:
            await keep(ctx, creq)
        await send_bytes(send, 200, rendered, JSON_TYPE, headers)

    async def answer(self, ctx: RequestContext, route: Route, creq: CanonicalRequest) -> Answer:
        """admit -> attempts -> meter -> settle, for one unary call."""
        reservation = await self._admit(ctx, route, creq)
        try:
            if creq.prepare is not None:
                await creq.prepare(creq.body)
            reply = await self.attempts.unary(ctx, route, creq)
        except asyncio.CancelledError:
            # The client went away while the upstream worked; nothing was delivered.
            self._settle_later(ctx, route, creq, reservation, None, 0)
            raise
        except Exception as exc:
            # Failed before an answer: nothing is billed, the reservation is released.
            await self.settler.settle(
                ctx, reservation, meter(None, route.price), _failed(exc)
            )
            raise
        assert isinstance(reply, Reply)
        if ctx.capture is not None:
            ctx.capture.reply(reply.body)
        metered = await self._meter_reply(ctx, route, creq, reply)
        await self.settler.settle(ctx, reservation, metered, Outcome("ok"))
        return Answer(reply, metered.usage, metered.cost_nanos)

    async def _admit(
        self, ctx: RequestContext, route: Route, creq: CanonicalRequest
    ) -> Reservation | None:
        max_output = 0 if creq.embedding else creq.max_output
        return await self.admission.admit(
            ctx,
            route,
            creq.body,
            max_output=max_output,
            client_bytes=creq.client_bytes,
            references=creq.references,
        )

    @staticmethod
    def _priced(
        ctx: RequestContext, route: Route, creq: CanonicalRequest, reported: str | None
    ) -> AppliedPrice:
        """The prices in force when the request was made, in the tier it was served in."""
        tier = call_tier(creq, reported, batch=ctx.batch is not None)
        return route.priced(ctx.started_at, tier)

    async def _meter_reply(
        self, ctx: RequestContext, route: Route, creq: CanonicalRequest, reply: Reply
    ) -> Metered:
        price = self._priced(ctx, route, creq, reply.service_tier)
        if reply.usage is not None and not creq.embedding:
            return meter(reply.usage, price)
        if creq.embedding:
            return await self._estimate(price, embed_prompt(creq.body), 0)
        output = 0
        if reply.protocol == GEMINI:
            output = await count_text(self.counter, await reply_text(reply))
        return await self._estimate(price, creq.body, output)

    async def _estimate(
        self, price: Price | AppliedPrice, request: dict[str, Any], output_tokens: int
    ) -> Metered:
        prompt = await self.admission.prompt_tokens(request)
        return meter(estimated_metadata(prompt, output_tokens), price, estimated=True)

    def _settle_later(
        self,
        ctx: RequestContext,
        route: Route,
        creq: CanonicalRequest,
        reservation: Reservation | None,
        usage: dict[str, Any] | None,
        relayed_tokens: int,
        tier: str | None = None,
    ) -> None:
        """Record a request whose client has gone: nobody awaits it, and counting a
        usage-less prompt must not hold up the cancellation."""
        price = self._priced(ctx, route, creq, tier)

        async def settle() -> None:
            if usage is not None:
                metered = meter(usage, price)
            else:
                metered = await self._estimate(price, creq.body, relayed_tokens)
            await self.settler.settle(
                ctx, reservation, metered, Outcome("interrupted", 499, interrupted=True)
            )

        self.settler.in_background(settle())

    # --- streams -------------------------------------------------------------------------

    async def _stream(
        self,
        door: Door,
        req: Request,
        send: Send,
        ctx: RequestContext,
        route: Route,
        creq: CanonicalRequest,
    ) -> None:
        encoder = door.encoder(creq, ctx.request_id)
        chunks = self.stream(ctx, route, creq)
        try:
            await until_disconnect(req.receive, self._relay(door, send, ctx, chunks, encoder))
        finally:
            await chunks.aclose()

    async def _relay(
        self,
        door: Door,
        send: Send,
        ctx: RequestContext,
        chunks: AsyncGenerator[Chunk, None],
        encoder: StreamEncoder,
    ) -> None:
        try:
            first = await anext(chunks, None)
        except GatewayError as exc:
            # Nothing was sent yet: a plain error answer with its own HTTP status.
            await self._send_error(door, send, ctx, exc)
            return
        tier = _tier_header(first.service_tier if first is not None else None)
        await start_stream(send, encoder.content_type, [*self._id_header(ctx), *tier])
        try:
            pending = first
            while pending is not None:
                data = encoder.chunk(pending)
                if data:
                    await send_chunk(send, data)
                pending = await anext(chunks, None)
            keep = getattr(encoder, "keep", None)  # KeepsState: store the answer before its end
            if keep is not None:
                await keep()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = as_gateway_error(exc, ctx.request_id)
            await send_chunk(send, encoder.error(err), more=False)
            return
        await send_chunk(send, encoder.end(), more=False)

    async def stream(
        self, ctx: RequestContext, route: Route, creq: CanonicalRequest
    ) -> AsyncGenerator[Chunk, None]:
        """admit -> attempts -> relay -> meter -> settle, for one stream.

        The chunk that finishes the answer (and any trailer after it) is held until the
        usage record is committed: at once when it carries the final usage, else when the
        upstream ends. Closing this iterator early (the client went away) cancels the
        upstream call and records what was generated."""
        ctx.streamed = True
        reservation = await self._admit(ctx, route, creq)
        tracker = StreamMeter(self.counter)
        settled = False
        upstream: AsyncIterator[Chunk] | None = None
        held: list[Chunk] = []
        try:
            if creq.prepare is not None:
                await creq.prepare(creq.body)
            first, upstream = await self.attempts.open_stream(ctx, route, creq)
            pending = first
            while pending is not None:
                chunk = pending
                tracker.see(chunk)
                if ctx.capture is not None:
                    ctx.capture.see(chunk.body)
                if settled:
                    yield chunk  # a trailer after the committed end
                elif held or chunk.finishes():
                    tracker.finished = True
                    held.append(chunk)
                    if chunk.usage is not None:
                        # The finishing chunk carries the final usage: commit now, release
                        # the end of the answer, and drain the upstream after.
                        settled = True
                        await self._settle_stream(ctx, route, creq, tracker, reservation)
                        for done in held:
                            ctx.mark_first_byte()
                            yield done
                        held.clear()
                else:
                    ctx.mark_first_byte()
                    yield chunk
                pending = await anext(upstream, None)
            if not settled:
                settled = True
                await self._settle_stream(ctx, route, creq, tracker, reservation)
            for chunk in held:
                ctx.mark_first_byte()
                yield chunk
        except Exception as exc:
            if settled and not held:
                # The answer was complete, recorded and delivered; what broke was only the
                # upstream's close after it.
                log.debug("upstream failed after a complete answer: %s", exc)
                return
            if not settled:
                settled = True
                if tracker.chunks:
                    # Broken off mid-answer: bill what was generated.
                    metered = await self._stream_metered(ctx, route, creq, tracker)
                    outcome = _failed(exc, interrupted=True)
                else:
                    # Nothing was generated: like a failed unary call, nothing is billed.
                    metered = meter(None, route.price)
                    outcome = _failed(exc)
                await self.settler.settle(ctx, reservation, metered, outcome)
            raise
        finally:
            if upstream is not None:
                aclose = getattr(upstream, "aclose", None)
                if aclose is not None:
                    await aclose()
            if not settled:
                # The client went away mid-stream: bill what was generated.
                self._settle_later(
                    ctx,
                    route,
                    creq,
                    reservation,
                    tracker.last_usage,
                    tracker.relayed_tokens,
                    tracker.service_tier,
                )

    async def _settle_stream(
        self,
        ctx: RequestContext,
        route: Route,
        creq: CanonicalRequest,
        tracker: StreamMeter,
        reservation: Reservation | None,
    ) -> None:
        metered = await self._stream_metered(ctx, route, creq, tracker)
        if tracker.finished:
            outcome = Outcome("ok")
        else:
            # The upstream ended the stream without finishing the answer.
            outcome = Outcome("interrupted", 200, interrupted=True, error="stream ended unfinished")
        await self.settler.settle(ctx, reservation, metered, outcome)

    async def _stream_metered(
        self, ctx: RequestContext, route: Route, creq: CanonicalRequest, tracker: StreamMeter
    ) -> Metered:
        price = self._priced(ctx, route, creq, tracker.service_tier)
        if tracker.last_usage is not None:
            return meter(tracker.last_usage, price)
        return await self._estimate(price, creq.body, tracker.relayed_tokens)

    # --- answers -------------------------------------------------------------------------

    @staticmethod
    def _id_header(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
        return [(b"x-gemgate-request-id", ctx.request_id.encode())]

    async def _send_error(
        self, door: Door, send: Send, ctx: RequestContext, exc: BaseException
    ) -> None:
        err = as_gateway_error(exc, ctx.request_id)
        status, body = door.render_error(err)
        if self.metrics is not None:
            self.metrics.reject(door.name, status)
        await send_bytes(send, status, body, JSON_TYPE, [*self._id_header(ctx), *err.headers()])


def _tier_header(reported: str | None) -> list[tuple[bytes, bytes]]:
    """The tier the upstream said it served the call in, as the Gemini API names it."""
    tier = tier_name(reported)
    return [(SERVICE_TIER_HEADER, tier.encode())] if tier is not None else []


def _failed(exc: BaseException, *, interrupted: bool = False) -> Outcome:
    code = exc.code if isinstance(exc, GatewayError) else 500
    message = exc.message if isinstance(exc, GatewayError) else type(exc).__name__
    status = "interrupted" if interrupted else "error"
    return Outcome(status, code, interrupted=interrupted, error=message)


def _sub_context(ctx: RequestContext) -> RequestContext:
    """A further billed call of the same client request (its own id and record)."""
    sub = RequestContext(door=ctx.door, method=ctx.method, client_ip=ctx.client_ip)
    sub.key, sub.route, sub.request_id = ctx.key, ctx.route, new_request_id()
    return sub


"""The stages composed: admit -> call upstream -> meter -> settle, for each kind of call.

Doors authenticate, authorize and route (they own the protocol details of those answers),
then hand the call here. Every call that passes admission ends with exactly one usage
record, whether it succeeds, fails, or its client goes away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from gemgate.billing import worst_case_nanos
from gemgate.errors import GatewayError, ResourceExhausted
from gemgate.limits.memory import Reservation
from gemgate.metrics import Metrics
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.meter import Metered, StreamMeter, estimated_metadata, meter
from gemgate.pipeline.route import Route
from gemgate.pipeline.settle import Budgets, Outcome, Settler
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.store.keys import KeyRecord
from gemgate.tokens import TURN_OVERHEAD, TokenCounter, can_count_inline
from gemgate.types.response import candidate_text


class RateLimiter(Protocol):
    async def check(self, key: KeyRecord) -> None: ...


log = logging.getLogger("gemgate.pipeline")



def _finishes(chunk: Chunk) -> bool:
    """Whether this chunk ends the answer (so the ledger must commit before it is sent)."""
    if chunk.finishing is not None:
        return chunk.finishing
    data = chunk.json()
    feedback = data.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        return True
    candidates = data.get("candidates")
    if not isinstance(candidates, list):
        return False
    return any(isinstance(c, dict) and c.get("finishReason") for c in candidates)


def _has_media(request: dict[str, Any]) -> bool:
    system = request.get("systemInstruction")
    for content in (*(request.get("contents") or ()), *((system,) if system else ())):
        for part in content.get("parts") or ():
            if "inlineData" in part or "fileData" in part:
                return True
    return False


class Pipeline:
    def __init__(
        self,
        *,
        budgets: Budgets,
        settler: Settler,
        counter: TokenCounter,
        metrics: Metrics | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.budgets = budgets
        self.settler = settler
        self.counter = counter
        self.metrics = metrics
        self.limiter = limiter

    # --- admit -------------------------------------------------------------------------

    async def prompt_tokens(self, request: dict[str, Any]) -> int:
        if can_count_inline(request):
            return self.counter.count_request(request).total
        return (await self.counter.count_request_async(request)).total

    def prompt_bound(self, request: dict[str, Any], client_bytes: int) -> int:
        """An upper bound of the prompt's tokens for any tokenizer (see bound_request).

        Without media every prompt token comes from text or JSON in the client's body, and
        no token is shorter than a byte, so the body's size bounds them at no cost.
        """
        if client_bytes and not _has_media(request):
            turns = len(request.get("contents") or ()) + 1
            return client_bytes + TURN_OVERHEAD * turns
        return self.counter.bound_request(request).total

    async def admit(
        self,
        ctx: RequestContext,
        route: Route,
        request: dict[str, Any],
        *,
        max_output: int | None,
        client_bytes: int = 0,
    ) -> Reservation | None:
        """Apply the key's rate limit, then reserve the request's worst-case cost against its
        budget."""
        key = ctx.key
        if key is None:
            return None
        if key.rpm and self.limiter is not None:
            await self.limiter.check(key)
        if key.budget_nanos is None:
            return None
        if max_output is None:
            cfg = request.get("generationConfig") or {}
            max_output = cfg.get("maxOutputTokens") or route.info.output_token_limit
            max_output *= cfg.get("candidateCount") or 1
        # First with a bound of the prompt that holds for any upstream's tokenizer and costs
        # no tokenizing; only a request that does not fit that way is counted exactly.
        bound = self.prompt_bound(request, client_bytes)
        try:
            return await self.budgets.reserve(key, worst_case_nanos(bound, max_output, route.price))
        except ResourceExhausted:
            prompt = await self.prompt_tokens(request)
            if prompt >= bound:
                raise
        return await self.budgets.reserve(key, worst_case_nanos(prompt, max_output, route.price))

    # --- meter ---------------------------------------------------------------------------

    async def _estimate(self, route: Route, request: dict[str, Any], output_tokens: int) -> Metered:
        prompt = await self.prompt_tokens(request)
        return meter(estimated_metadata(prompt, output_tokens), route.price, estimated=True)

    async def _meter_reply(self, route: Route, call: UpstreamCall, reply: Reply) -> Metered:
        if reply.usage is not None:
            return meter(reply.usage, route.price)
        output = self.counter.count_text(candidate_text(reply.json()))
        return await self._estimate(route, call.request, output)

    # --- calls ---------------------------------------------------------------------------

    async def _unary(
        self,
        ctx: RequestContext,
        route: Route,
        call: UpstreamCall,
        embed: bool,
        invoke: Callable[[], Awaitable[Reply]] | None = None,
    ) -> tuple[Reply, Metered]:
        reservation = await self.admit(
            ctx, route, call.request, max_output=0 if embed else None, client_bytes=call.client_bytes
        )
        try:
            if invoke is not None:
                reply = await invoke()
            elif embed:
                reply = await route.provider.embed(call)
            else:
                reply = await route.provider.generate(call)
        except Exception as exc:
            # Failed before an answer: nothing is billed, the reservation is released.
            code = exc.code if isinstance(exc, GatewayError) else 500
            message = exc.message if isinstance(exc, GatewayError) else type(exc).__name__
            await self.settler.settle(
                ctx, reservation, meter(None, route.price), Outcome("error", code, error=message)
            )
            raise
        except asyncio.CancelledError:
            # The client went away while the upstream worked; nothing was delivered.
            metered = await self._estimate(route, call.request, 0)
            self.settler.settle_in_background(
                ctx, reservation, metered, Outcome("interrupted", 499, interrupted=True)
            )
            raise
        if embed:
            metered = await self._estimate(route, self._embed_request(call.request), 0)
        else:
            metered = await self._meter_reply(route, call, reply)
        await self.settler.settle(ctx, reservation, metered, Outcome("ok"))
        return reply, metered

    async def generate(
        self,
        ctx: RequestContext,
        route: Route,
        call: UpstreamCall,
        invoke: Callable[[], Awaitable[Reply]] | None = None,
    ) -> tuple[Reply, Metered]:
        """One answer. ``invoke`` replaces the provider call (a same-protocol passthrough)."""
        return await self._unary(ctx, route, call, embed=False, invoke=invoke)

    async def embed(self, ctx: RequestContext, route: Route, call: UpstreamCall) -> tuple[Reply, Metered]:
        return await self._unary(ctx, route, call, embed=True)

    @staticmethod
    def _embed_request(request: dict[str, Any]) -> dict[str, Any]:
        if "requests" in request:
            return {"contents": [r.get("content") or {} for r in request["requests"]]}
        return {"contents": [request.get("content") or {}]}

    async def stream(
        self,
        ctx: RequestContext,
        route: Route,
        call: UpstreamCall,
        source: AsyncIterator[Chunk] | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Relay the upstream stream chunk by chunk; the chunk that finishes the answer (and
        any trailer after it) is held until the usage record is committed: at once when it
        carries the final usage, else when the upstream ends. Closing this iterator early
        (the client went away) cancels the upstream call and records what was generated.
        ``source`` replaces the provider's stream (a same-protocol passthrough)."""
        ctx.streamed = True
        reservation = await self.admit(
            ctx, route, call.request, max_output=None, client_bytes=call.client_bytes
        )
        tracker = StreamMeter(self.counter)
        upstream = source if source is not None else route.provider.stream(call)
        settled = False
        # From the finishing chunk on, chunks wait for the commit: a client never sees the
        # end of an answer whose record could still be lost. Only trailers follow it.
        held: list[Chunk] = []
        try:
            async for chunk in upstream:
                tracker.see(chunk)
                if settled:
                    yield chunk  # a trailer after the committed end (none from Gemini)
                elif held or _finishes(chunk):
                    held.append(chunk)
                    if chunk.usage is not None:
                        # The finishing chunk carries the final usage: commit now, release
                        # the end of the answer, and drain the upstream after.
                        settled = True
                        await self._settle_stream(ctx, route, call, tracker, reservation)
                        for done in held:
                            ctx.mark_first_byte()
                            yield done
                        held.clear()
                else:
                    ctx.mark_first_byte()
                    yield chunk
            if not settled:
                settled = True
                await self._settle_stream(ctx, route, call, tracker, reservation)
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
                code = exc.code if isinstance(exc, GatewayError) else 500
                message = exc.message if isinstance(exc, GatewayError) else type(exc).__name__
                if tracker.chunks:
                    # Broken off mid-answer: bill what was generated.
                    metered = await self._stream_metered(route, call, tracker)
                    outcome = Outcome("interrupted", code, interrupted=True, error=message)
                else:
                    # Nothing was generated: like a failed unary call, nothing is billed.
                    metered = meter(None, route.price)
                    outcome = Outcome("error", code, error=message)
                await self.settler.settle(ctx, reservation, metered, outcome)
            raise
        finally:
            await upstream.aclose()  # type: ignore[attr-defined]
            if not settled:
                # The client went away mid-stream: bill what was generated.
                metered = self._interrupted_metered(route, call, tracker)
                self.settler.settle_in_background(
                    ctx, reservation, metered, Outcome("interrupted", 499, interrupted=True)
                )

    async def _settle_stream(
        self,
        ctx: RequestContext,
        route: Route,
        call: UpstreamCall,
        tracker: StreamMeter,
        reservation: Reservation | None,
    ) -> None:
        metered = await self._stream_metered(route, call, tracker)
        await self.settler.settle(ctx, reservation, metered, Outcome("ok"))

    async def _stream_metered(self, route: Route, call: UpstreamCall, tracker: StreamMeter) -> Metered:
        if tracker.last_usage is not None:
            return meter(tracker.last_usage, route.price)
        return await self._estimate(route, call.request, tracker.relayed_tokens)

    def _interrupted_metered(self, route: Route, call: UpstreamCall, tracker: StreamMeter) -> Metered:
        # Runs during cancellation, so it must not await: the prompt of a usage-less
        # upstream is counted inline.
        if tracker.last_usage is not None:
            return meter(tracker.last_usage, route.price)
        prompt = self.counter.count_request(call.request).total
        return meter(estimated_metadata(prompt, tracker.relayed_tokens), route.price, estimated=True)

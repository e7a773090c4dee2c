"""The attempt loop: try a model's channels, and their upstream keys, until one answers.

Channels come in :class:`~gemgate.routing.Selector`'s order; on each channel the provider's
usable keys in turn. What a failed attempt means decides what comes next:

===================  =====================================  =============================
failure              example                                next
===================  =====================================  =============================
the client's         400 INVALID_ARGUMENT from the upstream  nothing: raised at once
the key's            401/403/API_KEY_INVALID; 429            the channel's next key (the
                                                            key is set aside / rests)
the channel's        connection refused or reset, connect   the next channel (the
                     timeout, 5xx, no first stream event    channel's circuit counts it)
                     in time, an error as a stream's first
                     event
unary read timeout   the upstream took longer than          nothing: it may have done
                     ``upstream_timeout_s``                  (and billed) the work
===================  =====================================  =============================

Each (channel, key) pair is tried at most once per request and at most ``max_attempts``
attempts are made. A stream is committed to its channel at its first event: from then on
nothing is retried. When every attempt failed the client gets the most telling error: a
429 (with the shortest Retry-After) over a timeout over an outage over a refused key.

Every attempt is recorded on the request context (:class:`~gemgate.routing.Attempt`) and
counted in the metrics; only the one that answered is billed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar

import orjson

from gemgate.errors import (
    BadGateway,
    CredentialRejected,
    DeadlineExceeded,
    GatewayError,
    Unavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnreachable,
)
from gemgate.metrics import Metrics
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.route import Route
from gemgate.routing import Attempt, Channel, KeyPool, Selector, UpstreamKey
from gemgate.routing import attempt as kinds
from gemgate.settings import RoutingSettings
from gemgate.types.canonical import GEMINI, CanonicalRequest, Chunk, UpstreamCall

log = logging.getLogger("gemgate.attempts")

T = TypeVar("T")
Once = Callable[[Channel, UpstreamCall], Awaitable[T]]

# The order in which failures tell a client most: what to do next is clearest for a 429.
_RANK = {kinds.RATE_LIMITED: 5, kinds.TIMEOUT: 4, kinds.SERVER: 3, kinds.CONNECT: 2, kinds.CREDENTIAL: 1}


@dataclass(slots=True)
class _Failed:
    kind: str
    error: GatewayError


class FirstEventTimeout(DeadlineExceeded):
    """A stream sent no first event within the first-token timeout."""


def classify(exc: GatewayError) -> str:
    if isinstance(exc, CredentialRejected):
        return kinds.CREDENTIAL
    if isinstance(exc, UpstreamRateLimited):
        return kinds.RATE_LIMITED
    if isinstance(exc, UpstreamUnreachable):
        return kinds.CONNECT
    if isinstance(exc, DeadlineExceeded):
        return kinds.TIMEOUT
    if isinstance(exc, UpstreamError):
        return kinds.SERVER
    return kinds.CLIENT


def _fails_over(exc: GatewayError, kind: str, streaming: bool) -> bool:
    if kind == kinds.CLIENT:
        return False
    if kind == kinds.TIMEOUT:
        # A stream that has not started can go elsewhere; a unary call that timed out
        # reading its answer may have been worked (and billed) upstream.
        return streaming or isinstance(exc, FirstEventTimeout)
    return True


class AttemptLoop:
    def __init__(
        self,
        routing: RoutingSettings,
        metrics: Metrics | None = None,
        selector: Selector | None = None,
    ) -> None:
        self._routing = routing
        self._metrics = metrics
        self._selector = selector or Selector()

    # --- the two kinds of call -------------------------------------------------------------

    async def unary(self, ctx: RequestContext, route: Route, creq: CanonicalRequest) -> object:
        """One answer (a :class:`~gemgate.types.canonical.Reply`) from the first channel
        that gives one."""

        async def once(channel: Channel, call: UpstreamCall) -> object:
            if creq.embedding:
                return await channel.provider.embed(call)
            return await channel.provider.generate(call)

        return await self._run(ctx, route, creq, once, streaming=False)

    async def open_stream(
        self, ctx: RequestContext, route: Route, creq: CanonicalRequest
    ) -> tuple[Chunk | None, AsyncIterator[Chunk]]:
        """A stream that has produced its first event (or ended at once without one), with
        that event; the rest follows from the iterator, which the caller must close."""
        timeout = self._routing.first_token_timeout_s

        async def once(
            channel: Channel, call: UpstreamCall
        ) -> tuple[Chunk | None, AsyncIterator[Chunk]]:
            events = channel.provider.stream(call)
            try:
                async with asyncio.timeout(timeout):
                    first = await anext(events, None)
            except TimeoutError:
                await _close(events)
                raise FirstEventTimeout(
                    f"Upstream '{channel.provider_name}' sent no event within {timeout:g} s."
                ) from None
            except BaseException:
                await _close(events)
                raise
            return first, events

        return await self._run(ctx, route, creq, once, streaming=True)

    async def session(
        self, ctx: RequestContext, route: Route, creq: CanonicalRequest, opener: Once[T]
    ) -> T:
        """A long-lived session (Live), opened by ``opener`` on the first channel that
        opens it; like a stream, it is committed to that channel from then on."""
        return await self._run(ctx, route, creq, opener, streaming=True)

    # --- the loop ------------------------------------------------------------------------

    async def _run(
        self,
        ctx: RequestContext,
        route: Route,
        creq: CanonicalRequest,
        once: Once[T],
        *,
        streaming: bool,
    ) -> T:
        channels = self._channels(ctx, route, creq)
        errors: list[tuple[str, GatewayError]] = []
        left = self._routing.max_attempts
        for channel in channels:
            if left <= 0:
                break
            keys: list[UpstreamKey | None]
            if channel.keys is None or not len(channel.keys):
                keys = [None]
            else:
                keys = list(channel.keys.in_turn())
                if not keys:
                    errors.append(_no_key(channel, channel.keys))
                    continue
            for key in keys:
                if left <= 0:
                    break
                left -= 1
                outcome = await self._attempt(ctx, channel, key, creq, once, streaming)
                if not isinstance(outcome, _Failed):
                    return outcome
                errors.append((outcome.kind, outcome.error))
                if outcome.kind not in (kinds.CREDENTIAL, kinds.RATE_LIMITED):
                    break  # the channel failed: its other keys would fail alike
        raise _most_telling(errors, route)

    def _channels(
        self, ctx: RequestContext, route: Route, creq: CanonicalRequest
    ) -> list[Channel]:
        seed = _sticky_seed(ctx, creq) if route.sticky else None
        channels = self._selector.order(route.channels, seed)
        if creq.prefer:
            # Channels already holding the request's resources first (a stable sort).
            channels.sort(key=lambda c: c.label not in creq.prefer)
        if creq.untranslated is not None:
            # Only a channel speaking the client's protocol can take what was not translated.
            channels = [c for c in channels if c.speaks(creq.protocol)]
            if not channels:
                raise creq.untranslated
        if not channels:
            waits = [c.health.retry_in() for c in route.channels if c.enabled]
            if not waits:
                raise Unavailable(f"Every channel of model {route.model_id} is turned off.")
            wait = max(1, math.ceil(min(waits)))
            raise Unavailable(
                f"Every channel of model {route.model_id} is failing; the next try is in {wait} s.",
                retry_after=wait,
            )
        return channels

    async def _attempt(
        self,
        ctx: RequestContext,
        channel: Channel,
        key: UpstreamKey | None,
        creq: CanonicalRequest,
        once: Once[T],
        streaming: bool,
    ) -> T | _Failed:
        passthrough = creq.raw is not None and channel.speaks(creq.protocol)
        call = UpstreamCall(
            model=channel.upstream_model,
            method=creq.method,
            request=creq.body,
            raw=creq.raw if passthrough else None,
            protocol=creq.protocol if passthrough else GEMINI,
            client_model=creq.model,
            credential=key.secret if key is not None else None,
            request_id=ctx.request_id,
            client_bytes=creq.client_bytes,
            headers=creq.headers if passthrough else {},
        )
        ctx.channel = channel
        ctx.upstream_key = key.label if key is not None else None
        health = channel.health
        health.begin()
        started = time.perf_counter()
        try:
            if creq.resolve is not None:
                # The request's gateway resources, made ready for this channel.
                call.request = await creq.resolve(channel, key)
            result = await once(channel, call)
        except asyncio.CancelledError:
            health.release()
            self._record(ctx, channel, key, kinds.CANCELLED, 499, started)
            raise
        except GatewayError as exc:
            kind = classify(exc)
            self._record(ctx, channel, key, kind, exc.code, started)
            if kind == kinds.CREDENTIAL and key is not None and channel.keys is not None:
                KeyPool.reject(key)
                log.warning(
                    "upstream %s refused key %s: it is set aside until the next reload",
                    channel.provider_name,
                    key.label,
                )
            elif kind == kinds.RATE_LIMITED and key is not None:
                KeyPool.rest(key, exc.retry_after)
            if kind in (kinds.CLIENT, kinds.CREDENTIAL, kinds.RATE_LIMITED):
                health.release()
            else:
                health.failure()
            if not _fails_over(exc, kind, streaming):
                raise
            log.info(
                "request %s: %s failed (%s, %d); trying the next",
                ctx.request_id,
                channel.label,
                kind,
                exc.code,
            )
            return _Failed(kind, exc)
        except Exception:
            health.release()
            self._record(ctx, channel, key, "internal", 500, started)
            raise
        ms = (time.perf_counter() - started) * 1000
        health.success(ms)
        if key is not None:
            KeyPool.succeeded(key)
        self._record(ctx, channel, key, None, 200, started)
        return result

    def _record(
        self,
        ctx: RequestContext,
        channel: Channel,
        key: UpstreamKey | None,
        error: str | None,
        status: int,
        started: float,
    ) -> None:
        now = time.perf_counter()
        ctx.attempts.append(
            Attempt(
                channel=channel.label,
                key=key.label if key is not None else None,
                error=error,
                status=status,
                at_ms=int((started - ctx.started) * 1000),
                duration_ms=int((now - started) * 1000),
            )
        )
        if self._metrics is not None:
            self._metrics.attempt(channel.label, error or "ok", now - started)


def _no_key(channel: Channel, pool: KeyPool) -> tuple[str, GatewayError]:
    if all(k.disabled for k in pool.keys):
        return kinds.CREDENTIAL, Unavailable(
            f"Every upstream key of '{channel.provider_name}' is turned off."
        )
    wait = pool.rest_remaining()
    if wait is not None:
        return kinds.RATE_LIMITED, UpstreamRateLimited(
            f"Upstream '{channel.provider_name}' is rate limiting every key.",
            retry_after=max(1, math.ceil(wait)),
        )
    return kinds.CREDENTIAL, CredentialRejected(
        f"Upstream '{channel.provider_name}' refused every key the gateway holds."
    )


def _most_telling(errors: list[tuple[str, GatewayError]], route: Route) -> GatewayError:
    if not errors:
        return BadGateway(f"No upstream could be tried for model {route.model_id}.")
    best_rank = max(_RANK.get(kind, 0) for kind, _ in errors)
    candidates = [exc for kind, exc in errors if _RANK.get(kind, 0) == best_rank]
    if best_rank == _RANK[kinds.RATE_LIMITED]:
        waits = [e.retry_after for e in candidates if e.retry_after is not None]
        chosen = candidates[-1]
        if waits:
            chosen.retry_after = min(waits)
        return chosen
    return candidates[-1]


def _sticky_seed(ctx: RequestContext, creq: CanonicalRequest) -> bytes:
    """The caller's key and the start of its conversation (system instruction and first
    turn), so one conversation keeps landing on one channel."""
    body = creq.body
    start = [body.get("systemInstruction"), (body.get("contents") or [None])[0]]
    key_id = ctx.key.id if ctx.key is not None else 0
    return f"{key_id}:".encode() + orjson.dumps(start)[:1024]


async def _close(events: AsyncIterator[Chunk]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        with suppress(Exception):
            await aclose()

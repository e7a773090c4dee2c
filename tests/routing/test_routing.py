"""Channels without a network: key pools, circuit breakers, selection order, and the
attempt loop driven in process with scripted providers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gemgate.catalog import CatalogModel
from gemgate.errors import (
    BadGateway,
    CredentialRejected,
    DeadlineExceeded,
    InvalidArgument,
    Unavailable,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnreachable,
    upstream_error,
)
from gemgate.pipeline.attempts import AttemptLoop
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.route import ZERO_PRICE, Route
from gemgate.routing import Channel, CircuitBreaker, KeyPool, Selector, UpstreamKey
from gemgate.routing.health import CLOSED, HALF_OPEN, OPEN
from gemgate.settings import RoutingSettings
from gemgate.types.canonical import CanonicalRequest, Chunk, Reply, UpstreamCall

INFO = CatalogModel(
    id="m", display_name="m", description="", input_token_limit=1000, output_token_limit=100,
    supported_methods=("generateContent",), input_modalities=("TEXT",), output_modalities=("TEXT",),
    thinking=False, price=ZERO_PRICE,
)


class Scripted:
    """A provider answering from a queue: an exception instance is raised, anything else
    is the reply; every call is recorded."""

    speaks: frozenset[str] = frozenset({"gemini"})

    def __init__(self, name: str, *script: Any) -> None:
        self.name = name
        self.script = list(script)
        self.calls: list[UpstreamCall] = []

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def _next(self, call: UpstreamCall) -> Any:
        self.calls.append(call)
        item = self.script.pop(0) if self.script else Reply(body=b"{}", data={})
        if isinstance(item, BaseException):
            raise item
        return item

    async def generate(self, call: UpstreamCall) -> Reply:
        item = self._next(call)
        if isinstance(item, float):
            await asyncio.sleep(item)
            return Reply(body=b"{}", data={})
        return item  # type: ignore[no-any-return]

    async def embed(self, call: UpstreamCall) -> Reply:
        return await self.generate(call)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        item = self._next(call)
        if isinstance(item, float):
            await asyncio.sleep(item)
        yield Chunk(body=b'{"candidates":[]}')


def channel(provider: Scripted, priority: int = 0, weight: int = 1, keys: list[str] | None = None,
            failures: int = 2, cooldown: float = 30.0) -> Channel:
    pool = KeyPool([UpstreamKey(k, f"secret-{k}") for k in keys]) if keys else None
    return Channel(
        label=f"{provider.name}/m", provider=provider, provider_name=provider.name,  # type: ignore[arg-type]
        upstream_model="m", priority=priority, weight=weight, keys=pool,
        health=CircuitBreaker(failures, cooldown),
    )


def run(channels: list[Channel], *, stream: bool = False, **routing: Any) -> tuple[Any, RequestContext]:
    loop = AttemptLoop(RoutingSettings(**routing))
    route = Route("m", tuple(channels), INFO)
    creq = CanonicalRequest(
        model="m", method="streamGenerateContent" if stream else "generateContent",
        body={"contents": []}, raw=b"{}",
    )
    ctx = RequestContext(door="gemini", method="generateContent")

    async def go() -> Any:
        if stream:
            first, events = await loop.open_stream(ctx, route, creq)
            await events.aclose()  # type: ignore[attr-defined]
            return first
        return await loop.unary(ctx, route, creq)

    return asyncio.run(go()), ctx


# --- keys ---------------------------------------------------------------------------------------


def test_keys_are_used_in_turn_skipping_rejected_and_resting() -> None:
    a, b, c = UpstreamKey("a", "1"), UpstreamKey("b", "2"), UpstreamKey("c", "3")
    pool = KeyPool([a, b, c])
    assert [k.label for k in pool.in_turn(0)] == ["a", "b", "c"]
    assert [k.label for k in pool.in_turn(0)] == ["b", "c", "a"]
    KeyPool.reject(b)
    KeyPool.rest(c, 10, now=0)
    assert [k.label for k in pool.in_turn(5)] == ["a"]
    assert pool.rest_remaining(5) == 5
    assert {k.label for k in pool.in_turn(11)} == {"a", "c"}


def test_rest_without_a_retry_delay_backs_off() -> None:
    key = UpstreamKey("a", "1")
    KeyPool.rest(key, None, now=0)
    first = key.resting_until
    KeyPool.rest(key, None, now=0)
    assert key.resting_until == 2 * first
    KeyPool.succeeded(key)
    assert key.strikes == 0


# --- the breaker ----------------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    br = CircuitBreaker(failures=2, cooldown=10)
    br.failure(now=0)
    assert br.state(0) == CLOSED and br.allows(0)
    br.failure(now=1)
    assert br.state(2) == OPEN and not br.allows(2)
    assert br.state(11) == HALF_OPEN and br.allows(11)
    br.begin(11)
    assert not br.allows(11)  # one probe at a time
    br.failure(now=12)
    assert br.state(13) == OPEN
    br.begin(23)
    br.success(5.0)
    assert br.state(23) == CLOSED and br.latency_ms == 5.0


def test_zero_failures_never_opens() -> None:
    br = CircuitBreaker(failures=0)
    for i in range(50):
        br.failure(now=i)
    assert br.state(50) == CLOSED


# --- selection -------------------------------------------------------------------------------------


def test_priority_tiers_then_weights() -> None:
    low, heavy, light = Scripted("low"), Scripted("heavy"), Scripted("light")
    chans = [channel(low, priority=1), channel(heavy, weight=3), channel(light, weight=1)]
    selector = Selector(random.Random(7))
    firsts = Counter(selector.order(chans)[0].provider_name for _ in range(4000))
    assert set(firsts) == {"heavy", "light"}
    assert 0.72 < firsts["heavy"] / 4000 < 0.78
    assert all(selector.order(chans)[-1].provider_name == "low" for _ in range(50))


def test_open_and_disabled_channels_are_left_out() -> None:
    a, b = channel(Scripted("a")), channel(Scripted("b"))
    a.health.failure()
    a.health.failure()
    b.enabled = False
    assert Selector().order([a, b]) == []


def test_sticky_seed_is_stable() -> None:
    chans = [channel(Scripted(n)) for n in "abcd"]
    selector = Selector()
    picks = {selector.order(chans, b"key:conversation")[0].provider_name for _ in range(20)}
    assert len(picks) == 1


# --- the attempt loop --------------------------------------------------------------------------------


def test_channel_failures_move_to_the_next_channel() -> None:
    a = Scripted("a", Unavailable("down"))
    b = Scripted("b")
    _reply, ctx = run([channel(a), channel(b, priority=1)])
    assert len(a.calls) == 1 and len(b.calls) == 1
    assert [(x.channel, x.error) for x in ctx.attempts] == [("a/m", "server"), ("b/m", None)]
    assert ctx.channel is not None and ctx.channel.provider_name == "b"


def test_key_failures_move_to_the_same_channels_next_key() -> None:
    a = Scripted("a", CredentialRejected("bad key"), UpstreamRateLimited("slow", retry_after=3))
    ch = channel(a, keys=["k1", "k2", "k3"])
    _reply, ctx = run([ch])
    assert [c.credential for c in a.calls] == ["secret-k1", "secret-k2", "secret-k3"]
    assert ctx.upstream_key == "k3"
    assert ch.keys is not None
    assert ch.keys.keys[0].rejected and ch.keys.keys[1].resting_until > 0
    assert ch.health.consecutive == 0  # key problems say nothing about the channel


def test_client_errors_are_raised_at_once() -> None:
    a = Scripted("a", UpstreamRejected(400, "INVALID_ARGUMENT", "bad", []))
    b = Scripted("b")
    with pytest.raises(UpstreamRejected):
        run([channel(a), channel(b, priority=1)])
    assert not b.calls
    with pytest.raises(InvalidArgument):
        run([channel(Scripted("x", InvalidArgument("no tools here")))])


def test_unary_read_timeout_is_not_retried_but_a_stream_timeout_is() -> None:
    a, b = Scripted("a", DeadlineExceeded("slow")), Scripted("b")
    with pytest.raises(DeadlineExceeded):
        run([channel(a), channel(b, priority=1)])
    assert not b.calls
    a, b = Scripted("a", 5.0), Scripted("b")
    first, ctx = run([channel(a), channel(b, priority=1)], stream=True, first_token_timeout_s=0.05)
    assert first is not None and [x.error for x in ctx.attempts] == ["timeout", None]


def test_most_telling_error_prefers_a_429_with_the_shortest_wait() -> None:
    a = Scripted("a", UpstreamRateLimited("a", retry_after=9))
    b = Scripted("b", UpstreamRateLimited("b", retry_after=4))
    c = Scripted("c", BadGateway("c"))
    with pytest.raises(UpstreamRateLimited) as info:
        run([channel(a), channel(b, priority=1), channel(c, priority=2)])
    assert info.value.retry_after == 4


def test_max_attempts_bounds_the_loop() -> None:
    providers = [Scripted(str(i), UpstreamUnreachable("x")) for i in range(5)]
    with pytest.raises(UpstreamUnreachable):
        run([channel(p, priority=i) for i, p in enumerate(providers)], max_attempts=3)
    assert [len(p.calls) for p in providers] == [1, 1, 1, 0, 0]


def test_every_circuit_open_fails_fast_with_retry_after() -> None:
    a = Scripted("a")
    ch = channel(a, failures=1, cooldown=30)
    ch.health.failure()
    with pytest.raises(Unavailable) as info:
        run([ch])
    assert not a.calls and info.value.retry_after is not None and 25 <= info.value.retry_after <= 30


def test_untranslated_requests_go_only_to_channels_speaking_the_protocol() -> None:
    loop = AttemptLoop(RoutingSettings())
    gemini_only = Scripted("g")
    route = Route("m", (channel(gemini_only),), INFO)
    creq = CanonicalRequest(
        model="m", method="generateContent", body={}, protocol="openai.chat", raw=b"{}",
        untranslated=InvalidArgument.field("x_future", "unknown"),
    )
    with pytest.raises(InvalidArgument, match="x_future"):
        asyncio.run(loop.unary(RequestContext(door="openai", method="chat"), route, creq))
    assert not gemini_only.calls


def test_google_api_key_invalid_is_the_gateways_credential_not_the_clients() -> None:
    body = {"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                   "reason": "API_KEY_INVALID"}]}}
    err = upstream_error(400, body, provider="google")
    assert isinstance(err, CredentialRejected) and err.code == 502

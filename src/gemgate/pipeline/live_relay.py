"""A Live session relayed to a channel that speaks Live (Google): frames both ways untouched,
except the setup, which names the channel's upstream model.

The upstream is opened through the attempt loop, so a channel that cannot complete the
setup (unreachable, refused key, rate limited, unavailable) is recorded and the next one
is tried before the client has seen anything. After ``setupComplete`` the session is
committed to that channel. Client input is admitted as it goes upstream, and every
``usageMetadata`` frame is billed (committed) before it reaches the client
(:mod:`.live_meter`). Whatever ends the session (the client leaves, the upstream closes or
breaks, a refusal, idleness) bills the turn in progress for what was relayed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.doors import gemini_live as codec
from gemgate.errors import GatewayError, as_gateway_error
from gemgate.pipeline.live_meter import LiveMeter
from gemgate.pipeline.live_session import LiveSession, ends_session
from gemgate.pipeline.route import Route
from gemgate.providers.gemini_live import LiveUpstream
from gemgate.routing import Channel
from gemgate.tokens import TURN_OVERHEAD
from gemgate.types.canonical import CanonicalRequest, UpstreamCall

log = logging.getLogger("gemgate.live")

_MEDIA = ("audio", "video", "mediaChunks", "media_chunks")


@dataclass(slots=True)
class _End:
    how: str  # client | upstream | refused | error | idle
    error: BaseException | None = None
    reason: str = ""


async def open_upstream(session: LiveSession, route: Route) -> LiveUpstream:
    """The first of ``route``'s Live channels to complete the session's setup."""
    timeout = session.settings.setup_timeout_s

    async def opener(channel: Channel, call: UpstreamCall) -> LiveUpstream:
        frame = session.setup.frame(channel.upstream_model)
        provider: Any = channel.provider
        return await provider.open_live(call, frame, timeout)

    creq = CanonicalRequest(model=session.setup.model, method="bidiGenerateContent", body={})
    return await session.serve.attempts.session(session.base, route, creq, opener)


def input_request(kind: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """What a client message adds to the conversation, as a canonical request to bound;
    None for messages that add nothing."""
    if kind == "clientContent":
        turns = message.get("turns")
        return {"contents": [t for t in turns if isinstance(t, dict)]} if isinstance(turns, list) else None
    parts: list[dict[str, Any]] = []
    if kind == "realtimeInput":
        for key in _MEDIA:
            blobs = message.get(key)
            for blob in blobs if isinstance(blobs, list) else [blobs] if blobs is not None else []:
                if isinstance(blob, dict):
                    parts.append({"inlineData": blob})
        text = message.get("text")
        if isinstance(text, str):
            parts.append({"text": text})
    elif kind == "toolResponse":
        responses = message.get("functionResponses") or message.get("function_responses") or []
        parts = [{"functionResponse": r} for r in responses if isinstance(r, dict)]
    return {"contents": [{"role": "user", "parts": parts}]} if parts else None


async def relay(session: LiveSession, upstream: LiveUpstream) -> None:
    ws = session.ws
    meter = LiveMeter(
        session.serve,
        session.base,
        session.route,
        carry=len(session.setup.frame()) + TURN_OVERHEAD,
        max_output=session.max_output,
    )
    await ws.send(upstream.setup_reply)
    session.touch()
    tasks = {
        asyncio.ensure_future(_client_to_upstream(session, upstream, meter)),
        asyncio.ensure_future(_upstream_to_client(session, upstream, meter)),
        asyncio.ensure_future(_idle(session)),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # The gateway is shutting down: the turn under way is billed all the same.
        session.serve.settler.in_background(meter.cut_short("the gateway shut down"))
        raise
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(iter(done))
    end = first.result() if not first.cancelled() and first.exception() is None else _End(
        "error", first.exception() if not first.cancelled() else None
    )
    await _finish(session, upstream, meter, end)


async def _finish(session: LiveSession, upstream: LiveUpstream, meter: LiveMeter, end: _End) -> None:
    ws = session.ws
    why = {"client": "the client went away", "upstream": "the upstream ended the session",
           "refused": "the key's allowance ran out", "idle": "the session was closed"}
    await asyncio.shield(meter.cut_short(why.get(end.how, "the session failed")))
    await upstream.aclose()
    if end.how == "client":
        return
    if end.how == "upstream":
        code = upstream.close_code or 1006
        if code == 1006:
            await ws.close(codec.CLOSE_INTERNAL, "The upstream broke off the session.")
        else:
            await ws.close(code, codec.reason_text(upstream.close_reason))
    elif end.how in ("refused", "idle"):
        reason = end.reason or (end.error.message if isinstance(end.error, GatewayError) else "")
        await session.go_away(reason)
    else:
        err = as_gateway_error(end.error or RuntimeError("session failed"), session.base.request_id)
        code, reason = codec.close_for(err)
        await ws.close(code, reason)


async def _idle(session: LiveSession) -> _End:
    return _End("idle", reason=await session.watch())


async def _client_to_upstream(session: LiveSession, upstream: LiveUpstream, meter: LiveMeter) -> _End:
    ws = session.ws
    while True:
        data = await ws.receive()
        if data is None:
            return _End("client")
        session.touch()
        try:
            frame = codec.parse_frame(data)
            kind = codec.message_kind(frame)
            message = next(iter(frame.values()))
            request = input_request(kind, message) if isinstance(message, dict) else None
            if request is not None:
                await meter.client_input(request)
                session.busy = True
        except GatewayError as exc:
            return _End("refused" if ends_session(exc) else "error", exc)
        try:
            await upstream.send(data)
        except Exception:
            return _End("upstream")


async def _upstream_to_client(session: LiveSession, upstream: LiveUpstream, meter: LiveMeter) -> _End:
    ws = session.ws
    while True:
        try:
            data = await upstream.receive()
        except Exception:
            data = None
            upstream.close_code = 1006
        if data is None:
            return _End("upstream")
        session.touch()
        has_turn = ("modelTurn" in data) if isinstance(data, str) else (b"modelTurn" in data)
        has_usage = ("usageMetadata" in data) if isinstance(data, str) else (b"usageMetadata" in data)
        if has_turn or has_usage:
            try:
                frame = orjson.loads(data)
            except orjson.JSONDecodeError:
                frame = None
            if isinstance(frame, dict):
                content = frame.get("serverContent")
                turn = content.get("modelTurn") if isinstance(content, dict) else None
                if isinstance(turn, dict):
                    await meter.model_output(turn)
                usage = frame.get("usageMetadata")
                if isinstance(usage, dict):
                    # Committed before the client sees it, even if the session ends meanwhile.
                    await asyncio.shield(meter.usage(codec.canonical_usage(usage)))
                    session.busy = False
        await ws.send(data)
        if ws.closed:
            return _End("client")

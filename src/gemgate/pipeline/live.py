"""Live sessions: the serve path's stages for one long-lived WebSocket session.

    authenticate -> authorize -> route -> admit (setup) -> open -> turns, each metered,
    key or token    key, model   model ->  ledger, rate,   channel  admitted and settled
                                 channels  budget          1, 2, ...

Every stage runs through :class:`~gemgate.pipeline.serve.Serve`'s own objects (key cache,
router, admission, attempt loop, settler, counter). The handshake is accepted, then the
caller is authenticated (an API key in ``x-goog-api-key``, ``?key=`` or ``Authorization:
Bearer``; on ``BidiGenerateContentConstrained`` only an ephemeral token); the setup frame
names the model. A model with channels that speak Live (Google) is relayed frame by
frame (:mod:`.live_relay`), trying those channels in the attempt loop's order until one
completes the setup; any other model is served turn by turn by the gateway
(:mod:`.live_turns`), each turn one streamed call through the serve path.

Refusals close the socket as Google does, with a code and a reason (see
:func:`gemgate.doors.gemini_live.close_for`); a budget or rate limit that runs out during
the session sends ``goAway`` and then closes cleanly (1000). A key holds at most
``live.max_sessions_per_key`` open sessions per worker; a session with no frame either way
for ``live.idle_timeout_s`` is closed the same way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import orjson

from gemgate.doors import gemini_live as codec
from gemgate.errors import (
    GatewayError,
    PermissionDenied,
    ResourceExhausted,
    as_gateway_error,
)
from gemgate.pipeline import live_relay, live_turns
from gemgate.pipeline.auth import extract_key
from gemgate.pipeline.authorize import check_key, check_model
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.door import Endpoint
from gemgate.pipeline.live_session import LiveSession
from gemgate.pipeline.live_tokens import LiveTokens, constrain
from gemgate.pipeline.serve import Serve
from gemgate.settings import LiveSettings
from gemgate.store.keys import KeyRecord
from gemgate.store.live_tokens import LiveToken
from gemgate.websocket import ClientSocket

log = logging.getLogger("gemgate.live")


class SessionSlots:
    """Open sessions per key, in this worker."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[int, int] = {}

    def take(self, key: KeyRecord) -> None:
        held = self.open.get(key.id, 0)
        if self.limit and held >= self.limit:
            raise ResourceExhausted.quota(
                f"live_sessions:{key.name}",
                f"API key '{key.name}' already holds {held} open Live sessions, its limit.",
                reason="LIVE_SESSIONS_EXCEEDED",
            )
        self.open[key.id] = held + 1

    def give(self, key: KeyRecord) -> None:
        left = self.open.get(key.id, 1) - 1
        if left > 0:
            self.open[key.id] = left
        else:
            self.open.pop(key.id, None)

    @property
    def total(self) -> int:
        return sum(self.open.values())


class LiveGateway:
    def __init__(self, serve: Serve, tokens: LiveTokens, settings: LiveSettings) -> None:
        self.serve = serve
        self.tokens = tokens
        self.settings = settings
        self.slots = SessionSlots(settings.max_sessions_per_key)

    async def __call__(self, endpoint: Endpoint, ws: ClientSocket) -> None:
        base = RequestContext(door=codec.NAME, method=codec.METHOD, client_ip=ws.client_ip)
        await ws.accept()
        key: KeyRecord | None = None
        try:
            # Refusals come after the setup frame, as Google's do: a client that has sent
            # its setup reads them as the setup's answer.
            frame = await self._first_frame(ws)
            if frame is None:
                return
            found, token = await self._authenticate(endpoint, ws, base)
            self.slots.take(found)
            key = found
            session = await self._set_up(endpoint, ws, base, token, frame)
            await self._run(session)
        except asyncio.CancelledError:
            raise
        except GatewayError as exc:
            code, reason = codec.close_for(exc)
            await ws.close(code, reason)
        except Exception as exc:
            code, reason = codec.close_for(as_gateway_error(exc, base.request_id))
            await ws.close(code, reason)
        finally:
            if key is not None:
                self.slots.give(key)
            await ws.close(codec.CLOSE_NORMAL)

    async def _authenticate(
        self, endpoint: Endpoint, ws: ClientSocket, base: RequestContext
    ) -> tuple[KeyRecord, LiveToken | None]:
        record = None
        if endpoint.operation == codec.CONSTRAINED:
            token = codec.ephemeral_token(ws.headers, ws.query)
            if token is None:
                raise PermissionDenied(
                    "BidiGenerateContentConstrained needs an ephemeral token "
                    "(Authorization: Token auth_tokens/...).",
                    reason="ACCESS_TOKEN_MISSING",
                )
            record = await self.tokens.start_session(token)
            if record is None:
                raise PermissionDenied(
                    "The ephemeral token is not valid: unknown, used up or expired.",
                    reason="ACCESS_TOKEN_EXPIRED",
                )
            key = next((k for k in self.serve.keys.records.values() if k.id == record.key_id), None)
            if key is None:
                raise PermissionDenied("The ephemeral token's API key no longer exists.",
                                       reason="API_KEY_REVOKED")
        else:
            key = await self.serve.keys.authenticate(extract_key(ws.headers, ws.query))
        check_key(key, ws.client_ip)
        base.key = key
        return key, record

    async def _first_frame(self, ws: ClientSocket) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self.settings.setup_timeout_s):
                data = await ws.receive()
        except TimeoutError:
            await ws.close(
                codec.CLOSE_INVALID,
                f"No setup frame within {self.settings.setup_timeout_s:g} s.",
            )
            return None
        if data is None:
            return None
        return codec.parse_frame(data)

    async def _set_up(
        self,
        endpoint: Endpoint,
        ws: ClientSocket,
        base: RequestContext,
        token: LiveToken | None,
        frame: dict[str, Any],
    ) -> LiveSession:
        setup = codec.read_setup(frame)
        if token is not None:
            setup = codec.read_setup({"setup": constrain(setup.message, token)})
        version = endpoint.params.get("version", "v1beta")
        route = self.serve.router.resolve(setup.model, "bidiGenerateContent", version)
        assert base.key is not None
        check_model(base.key, route.model_id)
        base.route = route
        deadline = token.expire_time if token is not None else None
        session = LiveSession(ws, self.serve, base, route, setup, self.settings, deadline)
        # The setup is admitted like a request: the ledger can record, the rate limit
        # allows it, the budget pays for a first turn.
        reservation = await self.serve.admission.admit(
            base, route, {"contents": []}, max_output=session.max_output,
            client_bytes=len(orjson.dumps(frame)),
        )
        if reservation is not None:
            await self.serve.admission.budgets.settle(reservation, 0)
        return session

    async def _run(self, session: LiveSession) -> None:
        route = session.route
        live = tuple(c for c in route.channels if hasattr(c.provider, "open_live"))
        others = tuple(c for c in route.channels if not hasattr(c.provider, "open_live"))
        if live:
            try:
                upstream = await live_relay.open_upstream(session, replace(route, channels=live))
            except GatewayError:
                if not others:
                    raise
                upstream = None
            if upstream is not None:
                await live_relay.relay(session, upstream)
                return
        session.route = replace(route, channels=others)
        await live_turns.run(session)

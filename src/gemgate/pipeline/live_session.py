"""One open Live session as its runners (:mod:`.live_relay`, :mod:`.live_turns`) see it:
the client's socket, the serve path's objects, the routed model and the setup, and how
the session ends (idle or expired: ``goAway``; a refusal: a close frame)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gemgate.doors import gemini_live as codec
from gemgate.errors import ResourceExhausted, as_gateway_error
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.route import Route
from gemgate.pipeline.serve import Serve
from gemgate.settings import LiveSettings
from gemgate.websocket import ClientSocket


@dataclass(slots=True)
class LiveSession:
    """One open session, as its runners (relay or turns) see it."""

    ws: ClientSocket
    serve: Serve
    base: RequestContext  # key, route, client address; each turn's record starts from it
    route: Route
    setup: codec.LiveSetup
    settings: LiveSettings
    deadline: datetime | None = None  # an ephemeral token's expiry: the session ends then
    last_frame: float = field(default_factory=time.monotonic)
    busy: bool = False  # a model turn is under way (never idle then)

    def touch(self) -> None:
        self.last_frame = time.monotonic()

    async def watch(self) -> str:
        """Returns why the session must end (idle, token expired) when it must. It wakes
        only when one of those could first be true."""
        limit = self.settings.idle_timeout_s
        while True:
            idle = time.monotonic() - self.last_frame
            if not self.busy and idle >= limit:
                return f"The session was idle for {limit:g} s."
            wait = limit - idle if not self.busy else limit
            if self.deadline is not None:
                left = (self.deadline - datetime.now(UTC)).total_seconds()
                if left <= 0:
                    return "The session's ephemeral token has expired."
                wait = min(wait, left)
            await asyncio.sleep(max(wait, 0.05))

    async def go_away(self, reason: str) -> None:
        """End the session cleanly: ``goAway``, then a normal close naming the reason."""
        await self.ws.send_text(codec.go_away(0))
        await self.ws.close(codec.CLOSE_NORMAL, codec.reason_text(reason))

    async def refuse(self, exc: BaseException) -> None:
        err = as_gateway_error(exc, self.base.request_id)
        code, reason = codec.close_for(err)
        await self.ws.close(code, reason)

    @property
    def max_output(self) -> int:
        config = self.setup.message.get("generationConfig") or self.setup.message.get("generation_config")
        value = config.get("maxOutputTokens") or config.get("max_output_tokens") if isinstance(config, dict) else None
        return value if isinstance(value, int) and value > 0 else self.route.info.output_token_limit


def ends_session(exc: BaseException) -> bool:
    """A refusal that runs out the session's allowance (its key's budget or rate limit):
    the session ends with ``goAway`` and a clean close rather than an error close."""
    return isinstance(exc, ResourceExhausted)

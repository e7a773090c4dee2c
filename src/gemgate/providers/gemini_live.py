"""Google's Live API upstream: one WebSocket per client session, opened with the channel's
key, answered ``setupComplete`` before the session is handed back.

Until ``setupComplete`` arrives nothing has reached the client, so every failure to get
there is raised as the error type the attempt loop fails over on (unreachable, refused
key, rate limited, unavailable, too slow); a close frame that judges the client's own
setup (1007, 1008) is :class:`~gemgate.errors.LiveRefused`, relayed as it came.
After that, frames go both ways untouched.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp

from gemgate.errors import (
    BadGateway,
    CredentialRejected,
    DeadlineExceeded,
    GatewayError,
    LiveRefused,
    Unavailable,
    UpstreamRateLimited,
    UpstreamUnreachable,
    scrub,
    upstream_error,
)

LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
MAX_FRAME_BYTES = 16 * 1024 * 1024
_CLIENT_CLOSES = (1007, 1008)


@dataclass(slots=True)
class LiveUpstream:
    """An open upstream session. ``setup_reply`` is the upstream's ``setupComplete`` frame."""

    ws: aiohttp.ClientWebSocketResponse
    setup_reply: str | bytes
    secrets: tuple[str, ...] = ()
    close_code: int | None = None
    close_reason: str = field(default="")

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(data)

    async def receive(self) -> str | bytes | None:
        """The next frame; None once the upstream closed (see ``close_code``)."""
        msg = await self.ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        if msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            self.close_code = self.ws.close_code or 1006
            self.close_reason = scrub(str(msg.extra or ""), self.secrets)
        else:  # ERROR: the connection broke
            self.close_code = 1006
        return None

    async def aclose(self) -> None:
        if not self.ws.closed:
            await self.ws.close()


def _close_error(provider: str, code: int, reason: str) -> GatewayError:
    lowered = reason.lower()
    if "api key" in lowered:
        return CredentialRejected(f"Upstream '{provider}' refused the gateway's credentials.")
    if "quota" in lowered or "rate" in lowered:
        return UpstreamRateLimited(f"Upstream '{provider}' is rate limiting: {reason}")
    if code in _CLIENT_CLOSES:
        return LiveRefused(code, reason)
    if code == 1006:
        return UpstreamUnreachable(f"Upstream '{provider}' dropped the session before its setup.")
    return Unavailable(f"Upstream '{provider}' closed the session ({code}): {reason or 'no reason'}")


async def open_live(
    session: aiohttp.ClientSession,
    base_url: str,
    credential: str | None,
    setup_frame: bytes,
    *,
    provider: str,
    secrets: tuple[str, ...],
    setup_timeout: float,
) -> LiveUpstream:
    """Connect, send the setup, and wait for ``setupComplete``."""
    headers = {"x-goog-api-key": credential} if credential else {}
    try:
        ws = await session.ws_connect(
            base_url + LIVE_PATH, headers=headers, max_msg_size=MAX_FRAME_BYTES, autoping=True
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise upstream_error(exc.status, None, provider=provider, secrets=secrets) from None
    except (aiohttp.ClientConnectionError, TimeoutError):
        raise UpstreamUnreachable(f"Upstream '{provider}' could not be reached.") from None
    upstream = LiveUpstream(ws, b"", secrets)
    try:
        await ws.send_str(setup_frame.decode("utf-8"))
        async with asyncio.timeout(setup_timeout):
            first = await upstream.receive()
    except TimeoutError:
        await upstream.aclose()
        raise DeadlineExceeded(
            f"Upstream '{provider}' did not complete the setup within {setup_timeout:g} s."
        ) from None
    except (aiohttp.ClientError, ConnectionError):
        await upstream.aclose()
        raise UpstreamUnreachable(f"Upstream '{provider}' dropped the session.") from None
    except BaseException:
        await upstream.aclose()
        raise
    if first is None:
        await upstream.aclose()
        raise _close_error(provider, upstream.close_code or 1006, upstream.close_reason)
    head = first[:64] if isinstance(first, bytes) else first[:64].encode()
    if b"setupComplete" not in head:
        await upstream.aclose()
        raise BadGateway(f"Upstream '{provider}' answered the setup with something else.")
    upstream.setup_reply = first
    return upstream

"""One client WebSocket over ASGI: accept, receive, send and close, nothing else.

``receive`` gives each message's text or bytes, or None once the client has gone (or the
connection was closed from this side). Sending after the client has gone is a no-op, so a
session that is winding down never fails on its last frames.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import parse_qsl

from gemgate.asgi import Receive, Scope, Send


class ClientSocket:
    __slots__ = ("_receive", "_send", "client_ip", "close_code", "closed", "headers", "path", "query")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        raw_query = scope.get("query_string", b"").decode("latin-1")
        self.query = dict(parse_qsl(raw_query, keep_blank_values=True))
        client = scope.get("client")
        self.client_ip = client[0] if client else ""
        self.path = scope.get("path", "")
        self.closed = False
        self.close_code: int | None = None  # the client's, once it closed

    async def accept(self) -> None:
        await self._send({"type": "websocket.accept"})

    async def refuse(self) -> None:
        """Refuse the handshake (HTTP 403)."""
        self.closed = True
        await self._send({"type": "websocket.close", "code": 1008})

    async def receive(self) -> str | bytes | None:
        if self.closed:
            return None
        message: dict[str, Any] = await self._receive()  # type: ignore[assignment]
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            return text if text is not None else (message.get("bytes") or b"")
        if kind == "websocket.disconnect":
            self.closed = True
            self.close_code = message.get("code")
        return None

    async def send(self, data: str | bytes) -> None:
        if self.closed:
            return
        message = {"type": "websocket.send", "text": data} if isinstance(data, str) else {
            "type": "websocket.send", "bytes": data}
        try:
            await self._send(message)
        except (OSError, RuntimeError):  # the connection went away under us
            self.closed = True

    async def send_text(self, data: bytes) -> None:
        """A frame of UTF-8 JSON, sent as a text message (what the SDKs send and expect)."""
        await self.send(data.decode("utf-8"))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError, RuntimeError):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

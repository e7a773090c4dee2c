"""Minimal ASGI request/response helpers shared by the doors.

The gateway is a raw ASGI application: a framework's routing, middleware stack and
response objects cost more per request than the whole gateway stage list, so the few
things it needs are here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from gemgate.errors import PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = b"application/json; charset=UTF-8"
SSE_TYPE = b"text/event-stream"


@dataclass(slots=True)
class Request:
    scope: Scope
    receive: Receive
    path: str
    method: str
    headers: dict[str, str]
    query: dict[str, str]
    client_ip: str
    _body: bytes | None = field(default=None)

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive) -> Request:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers[name.decode("latin-1")] = value.decode("latin-1")
        raw_qs = scope.get("query_string", b"")
        query = dict(parse_qsl(raw_qs.decode("latin-1"), keep_blank_values=True)) if raw_qs else {}
        client = scope.get("client")
        raw_path = scope.get("raw_path")
        # Keep %3A and %2F distinguishable from the decoded path only where it matters:
        # the route parser decodes once, after splitting on the last ':'.
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        path = path.split("?", 1)[0]
        return cls(
            scope=scope,
            receive=receive,
            path=path,
            method=scope["method"],
            headers=headers,
            query=query,
            client_ip=client[0] if client else "",
        )

    async def body(self, limit: int) -> bytes:
        """The whole body, refusing more than ``limit`` bytes with 413."""
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise asyncio.CancelledError
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return self._body


def _too_large(limit: int) -> PayloadTooLarge:
    mb = limit / (1024 * 1024)
    return PayloadTooLarge(f"Request payload size exceeds the limit: {limit} bytes ({mb:g} MB).")


def decode_path_segment(text: str) -> str:
    return unquote(text)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON_TYPE,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_bytes(send, status, orjson.dumps(data), JSON_TYPE, headers)


async def start_stream(
    send: Send, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [(b"content-type", content_type), (b"cache-control", b"no-cache")]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": 200, "headers": all_headers})


async def send_chunk(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def wait_disconnect(receive: Receive) -> None:
    """Return when the client goes away (the body must already have been read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(receive: Receive, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` (relaying a stream), cancelling it if the client goes away first."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(wait_disconnect(receive))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        gone.cancel()

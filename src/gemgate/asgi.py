"""Minimal ASGI request/response helpers shared by the doors.

The gateway is a raw ASGI application: a framework's routing, middleware stack and
response objects cost more per request than the whole gateway stage list, so the few
things it needs are here.

Request bodies are held in memory (parsed, they cost a few times their size), so the
server may give each request a :class:`BodyTicket` (in ``scope[BODY_TICKET]``) drawing on
one :class:`BodyBudget` of bytes for all bodies in the process: a body larger than
:data:`SMALL_BODY` waits for room (at most ``wait_s``) and is then refused with 503 and
``Retry-After``; its bytes return to the budget when its request ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

import orjson

from gemgate.errors import PayloadTooLarge, Unavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = b"application/json; charset=UTF-8"
SSE_TYPE = b"text/event-stream"


#: Where the server puts a request's :class:`BodyTicket` in its ASGI scope.
BODY_TICKET = "gemgate.body_ticket"
#: Where gemgate's own server puts the request's connection (a :class:`ConnectionEvents`).
CONNECTION = "gemgate.connection"
#: Bodies up to this size are not counted against the budget.
SMALL_BODY = 64 * 1024


class BodyBudget:
    """Bytes of request bodies that may be held at once in this process (event loop only)."""

    def __init__(self, capacity: int, *, wait_s: float = 2.0, retry_after_s: int = 2) -> None:
        self.capacity = capacity
        self.used = 0
        self.refused = 0
        self._wait_s = wait_s
        self._retry_after = retry_after_s
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def ticket(self) -> BodyTicket:
        return BodyTicket(self)

    async def take(self, nbytes: int) -> None:
        # A body alone may always be read (one body never exceeds the capacity anyway).
        if (self.used + nbytes <= self.capacity and not self._waiters) or self.used == 0:
            self.used += nbytes
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), self._wait_s)
        except TimeoutError:
            if future.done():  # granted just as the wait ran out
                return
            self._waiters.remove(entry)
            future.cancel()
            self.refused += 1
            raise Unavailable(
                "The gateway is reading too many large request bodies at once; retry shortly.",
                reason="BODIES_IN_FLIGHT",
                retry_after=self._retry_after,
            ) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.give(nbytes)  # granted, but nobody will read the body
            elif entry in self._waiters:
                self._waiters.remove(entry)
            raise

    def give(self, nbytes: int) -> None:
        self.used = max(self.used - nbytes, 0)
        while self._waiters:
            nbytes_next, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self.used + nbytes_next > self.capacity and self.used != 0:
                break
            self._waiters.popleft()
            self.used += nbytes_next
            future.set_result(None)


class BodyTicket:
    """One request's share of the :class:`BodyBudget`; :meth:`release` when it ends."""

    __slots__ = ("_budget", "held")

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.held = 0

    async def take(self, nbytes: int) -> None:
        await self._budget.take(nbytes)
        self.held += nbytes

    def release(self) -> None:
        if self.held:
            held, self.held = self.held, 0
            self._budget.give(held)


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
        """The whole body, refusing more than ``limit`` bytes with 413 (and, when the
        server gave the request a :class:`BodyTicket`, waiting for room for a large one)."""
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        expected = int(declared) if declared and declared.isdigit() else None
        if expected is not None and expected > limit:
            raise _too_large(limit)
        ticket: BodyTicket | None = self.scope.get(BODY_TICKET)
        if ticket is not None and expected is not None and expected > SMALL_BODY:
            await ticket.take(expected)  # room for all of it before any of it is read
            ticket = None
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
                if ticket is not None and size > SMALL_BODY:
                    # Without a declared length: count the bytes as they arrive.
                    await ticket.take(len(chunk) if ticket.held else size)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return self._body

    async def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives, message by message, never held whole (uploads); raises
        CancelledError when the client goes away. Not counted in the body budget: it holds
        one message at a time, and the server stops reading while it waits."""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise asyncio.CancelledError
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


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


class ConnectionEvents(Protocol):
    """What gemgate's own server tells a request about its connection."""

    def on_lost(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (once) if the connection is lost before the response is
        complete; None forgets the one set."""
        ...


class DisconnectWatch:
    """Cancels the current task when the client goes away during a unary call (its body
    already read), so that the upstream call is cancelled too.

    Under gemgate's own server the connection calls back when it is lost, at no cost per
    request; under any other ASGI server a watcher task waits for ``http.disconnect``."""

    __slots__ = ("_conn", "_fired", "_task", "_watcher")

    def __init__(self, req: Request) -> None:
        self._task = asyncio.current_task()
        self._fired = False
        self._watcher: asyncio.Task[None] | None = None
        self._conn: ConnectionEvents | None = req.scope.get(CONNECTION)
        if self._conn is not None:
            self._conn.on_lost(self._lost)
        else:
            self._watcher = asyncio.get_running_loop().create_task(wait_disconnect(req.receive))
            self._watcher.add_done_callback(self._gone)

    def _lost(self) -> None:
        self._fired = True
        if self._task is not None:
            self._task.cancel()

    def _gone(self, watcher: asyncio.Task[None]) -> None:
        if not watcher.cancelled() and watcher.exception() is None:
            self._lost()

    def fired(self) -> bool:
        """Whether the client went away (the task's cancellation, if so, is taken back)."""
        if self._fired and self._task is not None:
            self._task.uncancel()
        return self._fired

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.on_lost(None)
        elif self._watcher is not None:
            self._watcher.remove_done_callback(self._gone)
            self._watcher.cancel()


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

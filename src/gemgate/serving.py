"""How the HTTP server runs: uvicorn (httptools' parser, uvloop) with bounds on what one
client can make the gateway hold before it has even authenticated.

* Open files: the soft ``RLIMIT_NOFILE`` is raised to the hard limit at start, and the
  connections a process accepts are capped below it (:func:`connection_cap`): each client
  connection may need an upstream one, and the database, Redis and model files need a few.
  A connection over the cap is answered 503 and closed at once; that is logged.
* Headers: at most :data:`MAX_HEADER_BYTES` (request line included) and
  :data:`MAX_HEADERS` fields, else 431 and the connection is closed. httptools itself has
  no limit (uvicorn's ``h11_max_incomplete_event_size`` applies only to h11), so
  :class:`GatewayHttpProtocol` counts what arrives before the headers are complete.
* Time: a request's headers must arrive within :data:`HEADER_TIMEOUT_S` of its first byte
  (or of the connection), a body may pause at most :data:`BODY_IDLE_S`, and an idle
  keep-alive connection is closed after :data:`KEEP_ALIVE_S`.
* Bodies: every request draws on one :class:`~gemgate.asgi.BodyBudget` per process
  (:data:`BODY_BUDGET_FACTOR` times the largest body allowed), see :class:`BodyLimits`.

Refusals are logged at most once per :data:`LOG_EVERY_S` per kind, with how many there
were since, so a flood does not become a flood of log lines.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gemgate.asgi import BODY_TICKET, CONNECTION, BodyBudget, Receive, Scope, Send

log = logging.getLogger("gemgate.serving")

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
HEADER_TIMEOUT_S = 15.0
BODY_IDLE_S = 60.0
KEEP_ALIVE_S = 5
# File descriptors kept for everything but client connections (database, Redis, logs,
# model files); the rest is shared by client connections and their upstream ones.
RESERVED_FDS = 128
MAX_CONNECTIONS = 16_384
BODY_BUDGET_FACTOR = 4
LOG_EVERY_S = 10.0
_TICK_S = 1.0
_LIMITS_STATE = "gemgate.limits"

_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
_STATUS = {408: "DEADLINE_EXCEEDED", 431: "INVALID_ARGUMENT", 503: "UNAVAILABLE"}


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit (where allowed); the new soft
    limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d: %s", soft, exc)
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(open_files: int) -> int:
    """Client connections one process accepts with ``open_files`` descriptors."""
    return max(16, min(MAX_CONNECTIONS, (open_files - RESERVED_FDS) // 2))


class _Refusals:
    """Counts refusals by kind and logs each kind at most once per LOG_EVERY_S."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def note(self, kind: str, message: str, *args: Any) -> None:
        self._since[kind] = self._since.get(kind, 0) + 1
        now = time.monotonic()
        if now - self._last.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            count = self._since.pop(kind)
            self._last[kind] = now
            log.warning(message + " (%d such refusal(s) in the last %.0f s)", *args, count, LOG_EVERY_S)


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the connection, header and time limits above.

    The connection cap is uvicorn's ``limit_concurrency`` and the header byte limit its
    ``h11_max_incomplete_event_size`` (both set by the serve command)."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_connections: int | None = config.limit_concurrency
        self._max_header_bytes: int = config.h11_max_incomplete_event_size or MAX_HEADER_BYTES
        self._refusals: _Refusals = app_state.setdefault(_LIMITS_STATE, _Refusals())
        self._header_bytes = 0  # bytes received while the headers are incomplete
        self._block = 0  # the request line and header fields, as parsed
        self._headers = 0
        self._in_headers = False
        self._reading = False
        self._read_started = 0.0
        self._last_data = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._rejected = False
        self._on_lost: Callable[[], None] | None = None

    # --- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._max_connections is not None and len(self.connections) > self._max_connections:
            self._refusals.note(
                "connections", "connection refused: %d open connections is the cap",
                self._max_connections,
            )
            self._reject(503, "The gateway has too many open connections; retry shortly.")
            return
        self._start_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        incomplete = self.cycle is not None and not self.cycle.response_complete
        super().connection_lost(exc)
        callback, self._on_lost = self._on_lost, None
        if callback is not None and incomplete:
            callback()

    def on_lost(self, callback: Callable[[], None] | None) -> None:
        """The request's :class:`~gemgate.asgi.ConnectionEvents`: requests on one
        connection run one at a time, so one callback is all there is."""
        self._on_lost = callback

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        self._last_data = self.loop.time()
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Still in the headers after this data: all of it was header bytes.
        if self._in_headers and not self._rejected and self._header_bytes > self._max_header_bytes:
            self._too_large()

    def handle_websocket_upgrade(self) -> None:
        # The connection is the WebSocket protocol's from here on: no HTTP read limits.
        self._reading = False
        self._stop_timer()
        super().handle_websocket_upgrade()

    # --- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[CONNECTION] = self  # type: ignore[literal-required]
        self._header_bytes = 0
        self._block = 0
        self._headers = 0
        self._in_headers = True
        if not self._reading:
            self._start_reading()
        else:
            self._read_started = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._block += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._block += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        if self._rejected:
            return
        if self._headers > MAX_HEADERS or self._block > self._max_header_bytes:
            self._too_large()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._rejected:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._reading = False  # the pending tick, if any, finds this and stops
        if not self._rejected:
            super().on_message_complete()

    # --- limits ----------------------------------------------------------------------------


    def _start_reading(self) -> None:
        now = self.loop.time()
        self._reading = True
        self._read_started = self._last_data = now
        self._in_headers = True
        if self._timer is None:
            self._timer = self.loop.call_later(_TICK_S, self._tick)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if not self._reading or self._rejected or self.transport.is_closing():
            return
        now = self.loop.time()
        idle = self.cycle is None or self.cycle.response_complete
        if self._in_headers and idle and now - self._read_started > HEADER_TIMEOUT_S:
            self._refusals.note(
                "header-timeout", "connection closed: no complete headers within %.0f s",
                HEADER_TIMEOUT_S,
            )
            self._reject(408, f"The request headers did not arrive within {HEADER_TIMEOUT_S:g} s.")
            return
        if not self._in_headers and now - self._last_data > BODY_IDLE_S:
            self._refusals.note(
                "body-timeout", "connection closed: its request body paused for %.0f s", BODY_IDLE_S
            )
            self.transport.close()
            return
        self._timer = self.loop.call_later(_TICK_S, self._tick)

    def _too_large(self) -> None:
        client = f"{self.client[0]}" if self.client else "?"
        self._refusals.note(
            "headers", "request refused: headers beyond %d bytes or %d fields (client %s)",
            self._max_header_bytes, MAX_HEADERS, client,
        )
        self._reject(
            431,
            f"Request headers are limited to {self._max_header_bytes} bytes and {MAX_HEADERS} fields.",
        )

    def _reject(self, code: int, message: str) -> None:
        """Answer ``code`` in Google's error envelope and close the connection."""
        self._rejected = True
        self._reading = False
        self._stop_timer()
        if self.transport.is_closing():
            return
        body = orjson.dumps({"error": {"code": code, "message": message, "status": _STATUS[code]}})
        head = [
            b"HTTP/1.1 %d %s\r\n" % (code, _REASONS[code]),
            b"content-type: application/json; charset=UTF-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        if code == 503:
            head.append(b"retry-after: 1\r\n")
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()


class BodyLimits:
    """The gateway's ASGI app, each HTTP request given its ticket to the process's
    :class:`~gemgate.asgi.BodyBudget` (released when the request ends)."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.budget = BodyBudget(BODY_BUDGET_FACTOR * max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ticket = self.budget.ticket()
        scope[BODY_TICKET] = ticket
        try:
            await self.app(scope, receive, send)
        finally:
            ticket.release()


def create_app() -> BodyLimits:
    """The factory each worker process runs (``--workers N``)."""
    from gemgate.app import create_app as create_gateway

    gateway = create_gateway()
    return BodyLimits(gateway, gateway.settings.server.max_body_mb * 1024 * 1024)


def uvicorn_options(open_files: int) -> dict[str, Any]:
    """The serve command's uvicorn options for these limits."""
    return {
        "http": "gemgate.serving:GatewayHttpProtocol",
        "loop": "uvloop",
        "limit_concurrency": connection_cap(open_files),
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }

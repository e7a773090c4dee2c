"""Stream framing shared by the doors: SSE events and Google's streamed JSON array."""

from __future__ import annotations

import orjson

SSE_END = b"\r\n\r\n"


def sse_event(payload: bytes) -> bytes:
    """One ``data:`` event. Google separates events with CRLF CRLF; every client accepts it."""
    return b"data: " + payload + SSE_END


def sse_openai(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


class JsonArrayFramer:
    """Google's stream without ``alt=sse``: ``[`` obj ``,\\r\\n`` obj ... ``]``."""

    __slots__ = ("_started",)

    def __init__(self) -> None:
        self._started = False

    def item(self, payload: bytes) -> bytes:
        if self._started:
            return b",\r\n" + payload
        self._started = True
        return b"[" + payload

    def end(self) -> bytes:
        return b"]" if self._started else b"[]"

    def error(self, body: dict[str, object]) -> bytes:
        data = orjson.dumps(body)
        if self._started:
            return b",\r\n" + data + b"]"
        return b"[" + data + b"]"

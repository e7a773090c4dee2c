"""Request and response bodies of keys that keep them, redacted, written off the request
path.

A settled request hands its :class:`~gemgate.pipeline.capture.BodyCapture` to
:meth:`BodyLog.submit`, which only queues it; a thread redacts and inserts in batches.
When the queue is full the bodies are dropped (and counted), never the request delayed.

Redaction, before anything is stored: values of secret-named fields (``api_key``,
``authorization``, ``token``, ...) and anything in a text that looks like a credential
(Google and OpenAI key shapes, bearer tokens, gateway keys, the gateway's own upstream
keys) become ``[redacted]``; media (``inlineData`` data, ``data:`` URLs, base64 sources,
long base64 runs) becomes a note of its size. Each stored body is at most
:data:`MAX_STORED` characters.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from gemgate.errors import scrub
from gemgate.pipeline.capture import BodyCapture
from gemgate.store.bodies import insert_bodies

log = logging.getLogger("gemgate.admin")

MAX_STORED = 64 * 1024
QUEUE_MAX = 1000
BATCH = 100
SECRET_FIELDS = frozenset(
    {
        "key", "apikey", "api_key", "x_goog_api_key", "authorization", "token",
        "access_token", "refresh_token", "id_token", "secret", "client_secret", "password",
        "credential", "credentials", "private_key",
    }
)
MEDIA_FIELDS = frozenset({"inlinedata", "inline_data"})
_TOKENS = re.compile(
    r"(gg-[0-9A-Za-z_\-]{16,}|ya29\.[0-9A-Za-z_\-]+|sk-ant-[0-9A-Za-z_\-]{10,}"
    r"|(?i:bearer)\s+[0-9A-Za-z._~+/=\-]{8,})"
)
_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-]+")
LONG_BASE64 = 256
MAX_DEPTH = 64


class Redactor:
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def text(self, value: str) -> str:
        if value.startswith("data:") and ";base64," in value[:200]:
            return f"[data URL, {len(value)} characters, redacted]"
        if len(value) >= LONG_BASE64 and _BASE64.fullmatch(value):
            return f"[{len(value)} characters of base64, redacted]"
        return _TOKENS.sub("[redacted]", scrub(value, self._secrets))

    def value(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if depth >= MAX_DEPTH:
            return "[nested too deep, dropped]"
        if isinstance(value, list):
            return [self.value(v, depth + 1) for v in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k).lower().replace("-", "_")
            if name in SECRET_FIELDS and isinstance(v, str):
                out[k] = "[redacted]"
            elif name in MEDIA_FIELDS and isinstance(v, dict):
                out[k] = _media(v)
            elif name == "data" and isinstance(v, str) and len(v) > 64:
                out[k] = f"[{len(v)} characters of data, redacted]"
            else:
                out[k] = self.value(v, depth + 1)
        return out

    def body(self, raw: bytes | None) -> str | None:
        """A body as stored: redacted JSON, or a note when it is not JSON."""
        if raw is None:
            return None
        parsed = _json(raw)
        if parsed is _NOT_JSON:
            return f"[{len(raw)} bytes, not JSON, not kept]"
        return _bounded(orjson.dumps(self.value(parsed)).decode())

    def events(self, events: list[bytes], dropped: int) -> str:
        out: list[Any] = []
        for event in events:
            parsed = _json(event)
            out.append(self.text(event.decode("utf-8", "replace")) if parsed is _NOT_JSON else self.value(parsed))
        if dropped:
            out.append(f"[{dropped} more bytes of the stream not kept]")
        return _bounded(orjson.dumps(out).decode())


_NOT_JSON = object()


def _json(raw: bytes) -> Any:
    text = raw.strip()
    if text.startswith(b"data:"):  # one SSE event as the upstream framed it
        text = text[5:].strip()
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _media(part: dict[str, Any]) -> dict[str, Any]:
    data = part.get("data")
    size = len(data) * 3 // 4 if isinstance(data, str) else 0
    mime = part.get("mimeType") or part.get("mime_type") or "media"
    return {"mimeType": str(mime)[:100], "data": f"[{size} bytes of {str(mime)[:100]}, redacted]"}


def _bounded(text: str) -> str:
    if len(text) <= MAX_STORED:
        return text
    return text[:MAX_STORED] + f"... [{len(text) - MAX_STORED} more characters not kept]"


class BodyLog:
    def __init__(self, engine: Engine, redactor: Redactor) -> None:
        self._engine = engine
        self._redactor = redactor
        self._queue: queue.Queue[tuple[str, int | None, datetime, BodyCapture] | None] = (
            queue.Queue(QUEUE_MAX)
        )
        self._thread = threading.Thread(target=self._run, name="gemgate-bodies", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, request_id: str, key_id: int | None, capture: BodyCapture) -> None:
        try:
            self._queue.put_nowait((request_id, key_id, datetime.now(UTC), capture))
        except queue.Full:
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.warning("request bodies dropped: the body log is behind (%d so far)", self.dropped)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def _row(self, item: tuple[str, int | None, datetime, BodyCapture]) -> dict[str, Any]:
        request_id, key_id, at, capture = item
        r = self._redactor
        response = (
            r.body(capture.response) if capture.response is not None
            else r.events(capture.events, capture.dropped) if capture.events else None
        )
        return {
            "request_id": request_id, "key_id": key_id, "created_at": at,
            "request": r.body(capture.request), "response": response,
        }

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            items = [item]
            while len(items) < BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in items
            rows = []
            for it in items:
                if it is None:
                    continue
                try:
                    rows.append(self._row(it))
                except Exception:
                    log.warning("a request body could not be redacted; it is not kept", exc_info=True)
            try:
                insert_bodies(self._engine, rows)
            except Exception:
                log.warning("%d request bodies could not be written", len(rows), exc_info=True)

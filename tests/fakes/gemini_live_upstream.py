"""A fake of Google's Live API (``BidiGenerateContent`` over WebSocket), used as the
gateway's upstream in tests.

A real aiohttp WebSocket server on its own event loop in a background thread, speaking the
protocol as Google does: the first client frame is ``setup`` (answered ``setupComplete``);
each complete client turn (``clientContent`` with ``turnComplete``, or realtime text) is
answered ``"echo: " + <the turn's text>`` in ``serverContent.modelTurn`` chunks of one word
each, then ``generationComplete``, then one frame carrying ``turnComplete`` and that turn's
``usageMetadata``. Usage is per turn, as Google reports it: ``responseTokenCount`` is the
turn's own output (one token per word), ``promptTokenCount`` is everything the turn read
(system instruction, every earlier turn both ways, and the new one). Frames go out as
binary messages. A bad key or an unknown model is refused with Google's close frames
(1008). Fault injection: :meth:`refuse_handshake`, :meth:`drop_mid_turn`,
:meth:`go_away_after`, :meth:`close_setup`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

JSON = dict[str, Any]
LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


@dataclass
class LiveRecord:
    """One session the fake served."""

    headers: dict[str, str]
    frames: list[str | bytes] = field(default_factory=list)  # as received, untouched
    sent: list[bytes] = field(default_factory=list)
    setup: JSON | None = None
    closed_by_client: bool = False


def _words(text: str) -> int:
    return len(text.split())


def _text_of(contents: list[JSON]) -> str:
    out = []
    for content in contents:
        for part in content.get("parts") or []:
            if isinstance(part.get("text"), str):
                out.append(part["text"])
    return " ".join(out)


class FakeGeminiLive:
    def __init__(self, api_key: str = "upstream-secret-key", models: tuple[str, ...] = ()) -> None:
        self.api_key = api_key
        self.models = set(models)  # empty: every model
        self.sessions: list[LiveRecord] = []
        self._lock = threading.Lock()
        self._refuse: int | None = None
        self._drop: int | None = None  # drop the connection after this many chunks of a turn
        self._go_away: int | None = None
        self._setup_close: tuple[int, str] | None = None
        self.chunk_delay = 0.0
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeGeminiLive:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_get(LIVE_PATH, self._handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-gemini-live", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> FakeGeminiLive:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- fault injection (each applies once) ---------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.sessions.clear()
            self._refuse = self._drop = self._go_away = None
            self._setup_close = None
            self.chunk_delay = 0.0

    def refuse_handshake(self, status: int = 503) -> None:
        """The next handshake is answered with this HTTP status instead of an upgrade."""
        self._refuse = status

    def drop_mid_turn(self, after_chunks: int = 2) -> None:
        """The next turn's connection is cut (no close frame) after this many chunks."""
        self._drop = after_chunks

    def go_away_after(self, turns: int) -> None:
        """After this many turns of the next session: ``goAway``, then a normal close."""
        self._go_away = turns

    def close_setup(self, code: int, reason: str) -> None:
        """The next setup is answered with this close frame."""
        self._setup_close = (code, reason)

    # -- the protocol ------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._refuse is not None:
            status, self._refuse = self._refuse, None
            return web.json_response({"error": {"code": status, "message": "refused", "status": "UNAVAILABLE"}}, status=status)
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        record = LiveRecord(headers=dict(request.headers))
        with self._lock:
            self.sessions.append(record)
        if request.headers.get("x-goog-api-key") != self.api_key:
            await ws.close(code=1008, message=b"API key not valid. Please pass a valid API key.")
            return ws
        history: list[JSON] = []
        system = ""
        turns = 0
        pending: list[JSON] = []
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            record.frames.append(msg.data)
            frame = json.loads(msg.data)
            if record.setup is None:
                record.setup = setup = frame.get("setup") or {}
                model = str(setup.get("model", ""))
                if self._setup_close is not None:
                    code, reason = self._setup_close
                    self._setup_close = None
                    await ws.close(code=code, message=reason.encode())
                    return ws
                if not model.startswith("models/") or (self.models and model[7:] not in self.models):
                    await ws.close(code=1008, message=(
                        f"{model} is not found for API version v1beta, or is not supported for "
                        "bidiGenerateContent").encode())
                    return ws
                sys = setup.get("systemInstruction") or setup.get("system_instruction")
                system = _text_of([sys]) if isinstance(sys, dict) else ""
                await self._send(ws, record, {"setupComplete": {}})
                continue
            content = frame.get("clientContent") or frame.get("client_content")
            realtime = frame.get("realtimeInput") or frame.get("realtime_input")
            complete = False
            if content is not None:
                pending.extend(content.get("turns") or [])
                complete = bool(content.get("turnComplete") or content.get("turn_complete"))
            elif realtime is not None and isinstance(realtime.get("text"), str):
                pending.append({"role": "user", "parts": [{"text": realtime["text"]}]})
                complete = True
            if not complete:
                continue
            history.extend(pending)
            said = _text_of(pending)
            pending = []
            reply = f"echo: {said}"
            words = reply.split()
            prompt = _words(system) + sum(_words(_text_of([c])) for c in history)
            for i, word in enumerate(words):
                if self._drop is not None and i == self._drop:
                    self._drop = None
                    transport = request.transport
                    if transport is not None:
                        transport.abort()
                    return ws
                text = word if i == 0 else " " + word
                await self._send(ws, record, {"serverContent": {"modelTurn": {"parts": [{"text": text}]}}})
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
            history.append({"role": "model", "parts": [{"text": reply}]})
            await self._send(ws, record, {"serverContent": {"generationComplete": True}})
            usage = {
                "promptTokenCount": prompt,
                "responseTokenCount": len(words),
                "totalTokenCount": prompt + len(words),
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
                "responseTokensDetails": [{"modality": "TEXT", "tokenCount": len(words)}],
            }
            await self._send(ws, record, {"serverContent": {"turnComplete": True}, "usageMetadata": usage})
            turns += 1
            if self._go_away is not None and turns >= self._go_away:
                self._go_away = None
                await self._send(ws, record, {"goAway": {"timeLeft": "0s"}})
                await ws.close(code=1000, message=b"session over")
                return ws
        record.closed_by_client = True
        return ws

    async def _send(self, ws: web.WebSocketResponse, record: LiveRecord, frame: JSON) -> None:
        data = json.dumps(frame).encode()
        record.sent.append(data)
        await ws.send_bytes(data)

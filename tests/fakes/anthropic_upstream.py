"""A fake Anthropic Messages API: a real HTTP server on 127.0.0.1 in a background thread.

It follows Anthropic's wire format: ``POST /v1/messages`` with and without streaming (SSE
with ``event:`` lines: message_start, ping, content_block_start/delta/stop, message_delta,
message_stop), ``x-api-key`` and ``anthropic-version`` checks, the error envelope
``{"type": "error", "error": {"type", "message"}}`` with Anthropic's statuses (529 when
overloaded), usage with cache counts. Answers are scripted first-in first-out::

    with FakeAnthropic() as fake:
        fake.script(content=[{"type": "text", "text": "hi"}])
        fake.script(status=429, retry_after=3)
        fake.script(cut_after=3)               # a stream broken after 3 events
        fake.script(error_after=2)             # an ``error`` event after 2 events
        fake.script(hang=threading.Event())    # no answer until the event is set
        fake.script(hold=gate, hold_after=4)   # a stream paused after 4 events until set
        fake.script(delay=2.0)                 # the answer only after two seconds

Without a script the answer is ``"echo: <last user text>"``; usage counts words.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 529: "overloaded_error",
}


@dataclass
class Recorded:
    headers: dict[str, str]  # lowercased names
    raw: bytes
    json: Any


@dataclass
class Script:
    """One scripted answer. ``content``: the answer's blocks (text, thinking with signature,
    tool_use); ``usage`` overrides the counted usage; ``status`` != 200 answers an error of
    Anthropic's type for it. ``cut_after`` / ``error_after``: a stream aborted / sent an
    ``error`` event after that many events. ``hang`` holds the answer until it is set;
    ``hold`` pauses a stream after ``hold_after`` events until it is set; ``delay`` sleeps
    before answering."""

    content: list[dict[str, Any]] | None = None
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    status: int = 200
    message: str | None = None
    retry_after: int | None = None
    cut_after: int | None = None
    error_after: int | None = None
    error_status: int = 529  # the error event's type, by its status
    hang: threading.Event | None = None
    hold: threading.Event | None = None
    hold_after: int = 1
    delay: float = 0.0
    pieces: list[str] | None = None  # how a text answer is streamed (else word by word)
    headers: dict[str, str] = field(default_factory=dict)


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def _words(text: str) -> int:
    return len(text.split())


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for block in content or ():
        if isinstance(block, dict):
            if block.get("type") == "text":
                out.append(str(block.get("text", "")))
            elif block.get("type") == "tool_result":
                out.extend(_texts(block.get("content")))
    return out


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic:
    def __init__(self, api_key: str = "sk-ant-fake-key", *more_keys: str,
                 models: tuple[str, ...] = ("claude-test",)) -> None:
        """``api_key`` and ``more_keys``: the keys this fake accepts."""
        self.api_key = api_key
        self.api_keys = frozenset({api_key, *more_keys})
        self.disconnects = 0  # streams whose client left before the end
        self.models = set(models)
        self.requests: list[Recorded] = []
        self.sent: list[bytes] = []  # each answer's body as written
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self._count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeAnthropic:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/messages", self._messages)
            app.router.add_route("*", "/{tail:.*}", self._unknown)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-anthropic", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Anthropic server did not start")
        return self

    def stop(self) -> None:
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, **fields: Any) -> None:
        with self._lock:
            self._scripts.append(Script(**fields))

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
        self.requests.clear()
        self.sent.clear()
        self.disconnects = 0

    def _next(self) -> Script:
        with self._lock:
            self._count += 1
            return self._scripts.popleft() if self._scripts else Script()

    # ------------------------------------------------------------ HTTP

    async def _unknown(self, request: web.Request) -> web.Response:
        return web.json_response(error_body(404, f"Not found: {request.path}"), status=404)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(Recorded({k.lower(): v for k, v in request.headers.items()}, raw, body))
        if request.headers.get("x-api-key") not in self.api_keys:
            return web.json_response(error_body(401, "invalid x-api-key"), status=401)
        if not request.headers.get("anthropic-version"):
            return web.json_response(error_body(400, "anthropic-version: header is required"), status=400)
        invalid = self._validate(body)
        if invalid is not None:
            return invalid
        script = self._next()
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.hang is not None:
            while not script.hang.is_set():
                await asyncio.sleep(0.01)
        if script.status != 200:
            headers = {"retry-after": str(script.retry_after)} if script.retry_after else {}
            message = script.message or ("Overloaded" if script.status == 529 else "scripted failure")
            return web.json_response(error_body(script.status, message), status=script.status, headers=headers)
        message = self._answer(body, script)
        if body.get("stream"):
            return await self._stream(request, message, script)
        data = json.dumps(message).encode()
        self.sent.append(data)
        return web.Response(body=data, content_type="application/json", headers=script.headers)

    def _validate(self, body: Any) -> web.Response | None:
        def bad(status: int, text: str) -> web.Response:
            return web.json_response(error_body(status, text), status=status)

        if not isinstance(body, dict):
            return bad(400, "The request body is not valid JSON.")
        if body.get("model") not in self.models:
            return bad(404, f"model: {body.get('model')}")
        if not isinstance(body.get("max_tokens"), int):
            return bad(400, "max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return bad(400, "messages: at least one message is required")
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
                return bad(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        return None

    def _answer(self, body: dict[str, Any], script: Script) -> dict[str, Any]:
        prompt = sum(_words(t) for m in body["messages"] for t in _texts(m.get("content")))
        prompt += sum(_words(t) for t in _texts(body.get("system")))
        if script.content is not None:
            content = script.content
        else:
            last = next(m for m in reversed(body["messages"]) if m["role"] == "user")
            content = [{"type": "text", "text": "echo: " + " ".join(_texts(last.get("content")))}]
        output = sum(_words(b.get("text", "") + b.get("thinking", "")) for b in content)
        output += sum(_words(json.dumps(b["input"])) for b in content if b.get("type") == "tool_use")
        usage = {"input_tokens": max(1, prompt), "output_tokens": output,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, **(script.usage or {})}
        stop = script.stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn")
        return {"id": f"msg_fake{self._count:04d}", "type": "message", "role": "assistant",
                "model": body["model"], "content": content, "stop_reason": stop,
                "stop_sequence": None, "usage": usage}

    async def _stream(self, request: web.Request, message: dict[str, Any], script: Script) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", **script.headers})
        await resp.prepare(request)
        written = bytearray()
        self.sent.append(b"")
        try:
            for k, event in enumerate(_events(message, script.pieces)):
                if k == script.cut_after:
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                if k == script.error_after:
                    failure = error_body(script.error_status, script.message or "Overloaded")
                    await resp.write(_frame("error", failure))
                    break
                await resp.write(event)
                written += event
                self.sent[-1] = bytes(written)
                await asyncio.sleep(0)
                if script.hold is not None and k + 1 == script.hold_after:
                    while not script.hold.is_set():
                        await asyncio.sleep(0.005)
            await resp.write_eof()
        except (ConnectionResetError, RuntimeError):
            self.disconnects += 1
        return resp


def _events(message: dict[str, Any], pieces: list[str] | None = None) -> list[bytes]:
    """A message as Anthropic streams it (a text block in ``pieces``, if given)."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 1}}
    out = [_frame("message_start", {"type": "message_start", "message": start}),
           _frame("ping", {"type": "ping"})]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        empty = {"text": {"type": "text", "text": ""},
                 "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                 "tool_use": {**block, "input": {}}}[kind]
        out.append(_frame("content_block_start", {"type": "content_block_start", "index": index,
                                                  "content_block": empty}))
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            texts = pieces if pieces is not None else _pieces(block["text"])
            deltas = [{"type": "text_delta", "text": w} for w in texts]
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": w} for w in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            text = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": text[i:i + 5]} for i in range(0, len(text), 5)]
        for delta in deltas:
            out.append(_frame("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        out.append(_frame("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(_frame("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                        "usage": usage}))
    out.append(_frame("message_stop", {"type": "message_stop"}))
    return out


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []


__all__ = ["FakeAnthropic", "Script", "error_body"]

"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1 in a background thread.

It follows OpenAI's wire format (chat completions with and without SSE streaming, tool
calls, embeddings, model list, error envelopes) so providers and doors can be tested
against real sockets. Answers can be scripted first-in first-out::

    with FakeOpenAI() as fake:
        fake.script(reply={"content": "hi"})
        fake.script(reply={"tool_calls": [{"id": "call_1", "type": "function",
                                           "function": {"name": "f", "arguments": "{}"}}]})
        fake.script(status=400, error={"message": "bad", "type": "invalid_request_error"})
        ...  # point a client at fake.base_url
        fake.requests[-1].json

Without a script the answer is ``"echo: <last user text>"``; usage counts words.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

_WORD = re.compile(r"\S+\s*|\s+")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lowercased names
    json: Any
    raw: bytes
    peer: Any = None  # the client's (host, port): equal peers mean a reused connection


@dataclass
class Script:
    """One scripted answer.

    ``reply`` is either a whole chat.completion (it has ``choices``; returned verbatim for a
    non-streaming call) or a message spec ``{"content", "reasoning_content", "tool_calls",
    "finish_reason", "usage"}`` used for both streaming and non-streaming calls.
    ``stream_chunks`` are sent verbatim as SSE events (before the usage chunk and
    ``[DONE]``). ``hold`` pauses a stream after its first event until it is set; ``delay``
    sleeps before answering (seconds).
    """

    reply: dict[str, Any] | None = None
    stream_chunks: list[dict[str, Any]] | None = None
    status: int = 200
    error: dict[str, Any] | None = None
    omit_usage: bool = False
    hold: threading.Event | None = None
    delay: float = 0.0


def _error(
    status: int, message: str, *, type_: str, code: str | None, param: Any = None
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status)


def _words(text: str) -> int:
    return len(text.split())


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


class FakeOpenAI:
    """A fake OpenAI server. ``requests`` records every call; ``disconnects`` counts streams
    whose client went away before the end."""

    def __init__(
        self,
        api_key: str = "upstream-openai-key",
        *,
        models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small"),
    ) -> None:
        self.api_key = api_key
        self.models = list(models)
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.completed_streams = 0
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = threading.Event()
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(self._app(), shutdown_timeout=1.0, access_log=None)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock).start())
            self._runner = runner
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._stopping.set()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ scripting

    def script(
        self,
        reply: dict[str, Any] | None = None,
        stream_chunks: list[dict[str, Any]] | None = None,
        status: int = 200,
        error: dict[str, Any] | None = None,
        omit_usage: bool = False,
        *,
        hold: threading.Event | None = None,
        delay: float = 0.0,
    ) -> None:
        with self._lock:
            self._scripts.append(
                Script(reply, stream_chunks, status, error, omit_usage, hold, delay)
            )

    def reset(self) -> None:
        """Forget recorded requests and pending scripts."""
        with self._lock:
            self._scripts.clear()
        self.requests.clear()

    def _next_script(self) -> Script:
        with self._lock:
            return self._scripts.popleft() if self._scripts else Script()

    def _next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"chatcmpl-fake{self._counter:04d}"

    # ------------------------------------------------------------ HTTP

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = RecordedRequest(
            request.method,
            request.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            raw,
            request.transport.get_extra_info("peername") if request.transport else None,
        )
        self.requests.append(rec)
        return rec

    async def _checked_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        """Record the request; its JSON body if the key, the JSON and the model are good,
        else the error answer OpenAI would give."""
        rec = await self._record(request)
        denied = self._auth(rec)
        if denied is not None:
            return denied
        body = rec.json
        if not isinstance(body, dict):
            return _bad_json()
        unknown = self._model_check(body.get("model"))
        return unknown if unknown is not None else body

    def _auth(self, rec: RecordedRequest) -> web.Response | None:
        if rec.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return _error(
            401, "Incorrect API key provided", type_="invalid_request_error", code="invalid_api_key"
        )

    def _model_check(self, model: Any) -> web.Response | None:
        if model in self.models:
            return None
        return _error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            type_="invalid_request_error",
            code="model_not_found",
        )

    async def _unknown(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _error(
            404,
            f"Invalid URL ({request.method} {request.path})",
            type_="invalid_request_error",
            code=None,
        )

    async def _models(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        denied = self._auth(rec)
        if denied is not None:
            return denied
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _embeddings(self, request: web.Request) -> web.Response:
        checked = await self._checked_body(request)
        if isinstance(checked, web.StreamResponse):
            return checked
        body = checked
        script = self._next_script()
        if script.status != 200:
            return self._scripted_error(script)
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return _error(
                400,
                "'input' must be a string or an array of strings",
                type_="invalid_request_error",
                code=None,
                param="input",
            )
        dims = body.get("dimensions") or 8
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(text, dims)}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(_words(t) for t in inputs)
        out: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
        if not script.omit_usage:
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response(out)

    def _scripted_error(self, script: Script) -> web.Response:
        error = {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        if script.error:
            error = {**error, **script.error}
        return web.json_response({"error": error}, status=script.status)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        checked = await self._checked_body(request)
        if isinstance(checked, web.StreamResponse):
            return checked
        body = checked
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(
                400,
                "[] is too short - 'messages'",
                type_="invalid_request_error",
                code=None,
                param="messages",
            )
        script = self._next_script()
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.status != 200:
            return self._scripted_error(script)
        prompt_tokens = sum(_words(_message_text(m)) for m in messages if isinstance(m, dict))
        spec = (
            script.reply
            if script.reply is not None
            else {"content": "echo: " + _last_user_text(messages)}
        )
        n = body.get("n") or 1
        if body.get("stream") is True:
            opts = body.get("stream_options") or {}
            include_usage = bool(opts.get("include_usage")) and not script.omit_usage
            return await self._stream(request, body, spec, script, n, include_usage, prompt_tokens)
        if "choices" in spec:
            out = dict(spec)
            if script.omit_usage:
                out.pop("usage", None)
            return web.json_response(out)
        out = {
            "id": self._next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "message": _message(spec),
                    "logprobs": None,
                    "finish_reason": _finish(spec),
                }
                for i in range(n)
            ],
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        if not script.omit_usage:
            out["usage"] = _usage(spec, prompt_tokens, n)
        return web.json_response(out)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        spec: dict[str, Any],
        script: Script,
        n: int,
        include_usage: bool,
        prompt_tokens: int,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await resp.prepare(request)
        chunk_id = self._next_id()
        created = int(time.time())
        head = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body["model"],
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        if include_usage:
            head["usage"] = None
        if script.stream_chunks is not None:
            chunks = list(script.stream_chunks)
        else:
            chunks = [{**head, "choices": [c]} for i in range(n) for c in _stream_choices(spec, i)]
        events = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks]
        if include_usage:
            if script.stream_chunks is not None:
                spec = {"content": _streamed_text(script.stream_chunks)}
            final = {**head, "choices": [], "usage": _usage(spec, prompt_tokens, n)}
            events.append(f"data: {json.dumps(final)}\n\n".encode())
        events.append(b"data: [DONE]\n\n")
        try:
            for k, event in enumerate(events):
                await resp.write(event)
                if k == 0 and script.hold is not None:
                    await self._wait(script.hold)
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, RuntimeError):
            self.disconnects += 1
            return resp
        self.completed_streams += 1
        return resp

    async def _wait(self, hold: threading.Event) -> None:
        deadline = time.monotonic() + 10
        while not hold.is_set() and not self._stopping.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        # Give the transport a moment to notice a client that left while we waited.
        await asyncio.sleep(0.02)


def _bad_json() -> web.Response:
    return _error(
        400,
        "We could not parse the JSON body of your request.",
        type_="invalid_request_error",
        code=None,
    )


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message)
    return ""


def _message(spec: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": spec.get("content"),
        "refusal": None,
        "annotations": [],
    }
    if spec.get("reasoning_content"):
        message["reasoning_content"] = spec["reasoning_content"]
    if spec.get("tool_calls"):
        message["tool_calls"] = spec["tool_calls"]
    return message


def _finish(spec: dict[str, Any]) -> str:
    return spec.get("finish_reason") or ("tool_calls" if spec.get("tool_calls") else "stop")


def _usage(spec: dict[str, Any], prompt_tokens: int, n: int) -> dict[str, Any]:
    if isinstance(spec.get("usage"), dict):
        return spec["usage"]
    completion = _words(spec.get("content") or "") + _words(spec.get("reasoning_content") or "")
    for call in spec.get("tool_calls") or []:
        completion += _words(call.get("function", {}).get("arguments", ""))
    completion *= n
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _stream_choices(spec: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """One choice's stream, as OpenAI sends it: role first, then fragments, then finish."""

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    out = [choice({"role": "assistant", "content": "", "refusal": None})]
    for piece in _WORD.findall(spec.get("reasoning_content") or ""):
        out.append(choice({"reasoning_content": piece}))
    for piece in _WORD.findall(spec.get("content") or ""):
        out.append(choice({"content": piece}))
    for ti, call in enumerate(spec.get("tool_calls") or []):
        fn = call.get("function", {})
        first = {
            "index": ti,
            "id": call.get("id"),
            "type": "function",
            "function": {"name": fn.get("name"), "arguments": ""},
        }
        out.append(choice({"tool_calls": [first]}))
        args = fn.get("arguments", "")
        for k in range(0, len(args), 7):
            out.append(
                choice({"tool_calls": [{"index": ti, "function": {"arguments": args[k : k + 7]}}]})
            )
    out.append(choice({}, _finish(spec)))
    return out


def _streamed_text(chunks: list[dict[str, Any]]) -> str:
    text: list[str] = []
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
    return "".join(text)


def _vector(text: str, dims: int) -> list[float]:
    digest = b""
    seed = text.encode()
    while len(digest) < dims:
        seed = hashlib.sha256(seed).digest()
        digest += seed
    return [round(b / 255.0, 6) for b in digest[:dims]]


__all__ = ["FakeOpenAI", "RecordedRequest", "Script"]

"""The providers under conformance test, each behind one small interface: a *subject*.

A subject holds a provider built by the registry from real ``ProviderSettings`` (as the
gateway builds it), started on the subject's own event loop, plus the hooks a test needs
to make its upstream misbehave. Upstream subjects drive a fake server that speaks the
upstream's wire protocol over real sockets; the local subject runs the bundled GGUF model
in-process, and a fault that cannot exist in-process (an HTTP status, a refused
connection, a read timeout) is skipped for it with a reason that says so.

Every hook scripts the *next* call only; :meth:`Subject.reset` runs before each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, ClassVar, Protocol, TypeVar

import pytest
from aiohttp import web
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini, error_body
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.vertex_upstream import FakeVertex

from gemgate.errors import RETRY_INFO
from gemgate.providers.base import Provider
from gemgate.providers.registry import build_provider
from gemgate.routing.keys import KeyPool
from gemgate.settings import (
    ProviderSettings,
    RoutingSettings,
    Secret,
    ServerSettings,
    Settings,
    VertexSettings,
)

T = TypeVar("T")
JSON = dict[str, Any]

# Upstream keys that do not look like keys (no "AIza", no "sk-"): only the adapter knowing
# its own secrets can keep them out of an error message.
KEY_1 = "conformance-upstream-credential-one"
KEY_2 = "conformance-upstream-credential-two"
KEYS = (KEY_1, KEY_2)

SETTINGS = Settings(
    server=ServerSettings(upstream_timeout_s=10.0),
    routing=RoutingSettings(connect_timeout_s=2.0),
)


class Gate(Protocol):
    """A stream the upstream holds after its first event, until released."""

    @property
    def released(self) -> bool: ...

    def release(self) -> None: ...


def settings_with(upstream_timeout_s: float) -> Settings:
    return dataclasses.replace(
        SETTINGS, server=dataclasses.replace(SETTINGS.server, upstream_timeout_s=upstream_timeout_s)
    )


class Subject:
    """One provider under test. ``model``: the upstream's name for the generation model."""

    kind: ClassVar[str]
    upstream: ClassVar[bool] = True  # it talks to a server (faults can be injected)
    model: ClassVar[str]
    embed_model: ClassVar[str]
    # Requests the adapter itself cannot honour, with the field its InvalidArgument names.
    unsupported: ClassVar[tuple[tuple[JSON, str], ...]] = ()

    def __init__(self, runner: asyncio.Runner, settings: ProviderSettings) -> None:
        self.runner = runner
        self.settings = settings
        provider, pool = build_provider(settings, SETTINGS, self.model)
        self.provider: Provider = provider
        self.pool: KeyPool | None = pool
        self.run(provider.start())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the subject's loop (where its provider lives)."""
        return self.runner.run(asyncio.wait_for(coro, timeout))

    def close(self) -> None:
        self.run(self.provider.aclose())

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.pool.secrets if self.pool is not None else ()

    @contextlib.asynccontextmanager
    async def another(
        self, *, upstream_timeout_s: float = 10.0, base_url: str | None = None
    ) -> AsyncIterator[Provider]:
        """A second provider of the same settings (but the timeout or address), started."""
        settings = self.settings
        if base_url is not None:
            settings = dataclasses.replace(settings, base_url=base_url)
        provider, _ = build_provider(settings, settings_with(upstream_timeout_s), self.model)
        await provider.start()
        try:
            yield provider
        finally:
            await provider.aclose()

    # -- hooks ---------------------------------------------------------------------------

    def reset(self) -> None:
        raise NotImplementedError

    def calls(self) -> int:
        """Model calls the upstream has seen since the last reset."""
        raise NotImplementedError

    def script(self, pieces: list[str], usage: JSON | None = None) -> None:
        """The next call answers ``pieces`` (one stream event each; STOP) and reports
        ``usage`` (Gemini's usageMetadata shape) if given."""
        raise NotImplementedError

    def require_upstream(self, fault: str) -> None:
        """Skip a test of a fault only a networked upstream can have."""

    def base_url_at(self, port: int) -> str:
        raise NotImplementedError

    def hold(self, pieces: list[str]) -> Gate:
        raise NotImplementedError

    def cut(self, pieces: list[str]) -> None:
        """The next stream's connection breaks right after its first event."""
        raise NotImplementedError

    def fail(self, status: int, message: str, *, retry_after: int | None = None,
             form: str = "") -> None:
        """The next call is answered with HTTP ``status`` and the upstream's error envelope."""
        raise NotImplementedError

    def fail_first_event(self, code: int, message: str) -> None:
        """The next stream is a 200 whose first event is an error."""
        raise NotImplementedError

    def delay(self, seconds: float) -> None:
        """The next call waits ``seconds`` before answering anything."""
        raise NotImplementedError

    def saw_disconnect(self, gate: Gate, timeout: float = 5.0) -> bool:
        """Whether the upstream saw the client leave the held stream (the gate is released)."""
        raise NotImplementedError

    def sent_key(self) -> str | None:
        raise NotImplementedError

    def sent_body(self) -> bytes:
        raise NotImplementedError

    def passthrough(self, stream: bool = False) -> tuple[str, bytes] | None:
        """A protocol the provider speaks and a client body in it (for a stream call if
        ``stream``), written as no serialiser would write it; None if it speaks none."""
        return None

    def reported(self, usage: JSON) -> JSON:
        """``usage`` as the upstream can report it (an upstream that counts thinking as
        output reports no separate thoughts)."""
        return usage


# ---------------------------------------------------------------------------------------
# gemini


def gemini_events(model: str, pieces: list[str], usage: JSON | None = None) -> list[JSON]:
    """A Google stream: one event per piece, cumulative usage on each, STOP on the last."""
    prompt = usage["promptTokenCount"] if usage else 4
    events = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        cand: JSON = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
        if last:
            cand["finishReason"] = "STOP"
        meta = usage if usage and last else {
            "promptTokenCount": prompt, "candidatesTokenCount": i + 1,
            "totalTokenCount": prompt + i + 1,
        }
        events.append({"candidates": [cand], "usageMetadata": meta, "modelVersion": model,
                       "responseId": "conformance-response"})
    return events


class GeminiSubject(Subject):
    kind = "gemini"
    model = "gemini-2.5-flash"
    embed_model = "gemini-embedding-001"

    def __init__(self, runner: asyncio.Runner, fake: FakeGemini) -> None:
        self.fake = fake
        super().__init__(runner, ProviderSettings(
            name="conformance-gemini", type="gemini", base_url=fake.base_url,
            api_keys=tuple(Secret(k, f"env:CONFORMANCE_KEY_{i}") for i, k in enumerate(KEYS)),
        ))

    def reset(self) -> None:
        self.fake.reset()

    def calls(self) -> int:
        return len(self.fake.requests)

    def base_url_at(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def script(self, pieces: list[str], usage: JSON | None = None) -> None:
        self.fake.script(self.model, stream=gemini_events(self.model, pieces, usage))

    def hold(self, pieces: list[str]) -> Gate:
        gate = self.fake.hold_stream(self.model, 1)
        self.script(pieces)
        return gate

    def cut(self, pieces: list[str]) -> None:
        self.fake.script(self.model, stream=gemini_events(self.model, pieces), cut_after=1)

    def fail(self, status: int, message: str, *, retry_after: int | None = None,
             form: str = "RetryInfo") -> None:
        error: JSON = {"message": message}
        headers = {}
        if retry_after is not None and form == "RetryInfo":
            error["details"] = [{"@type": RETRY_INFO, "retryDelay": f"{retry_after}s"}]
        elif retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self.fake.script(self.model, status=status, error=error, headers=headers)

    def fail_first_event(self, code: int, message: str) -> None:
        self.fake.script(self.model, stream=[error_body(code, message)])

    def delay(self, seconds: float) -> None:
        self.fake.script(self.model, delay=seconds)

    def saw_disconnect(self, gate: Gate, timeout: float = 5.0) -> bool:
        try:  # this fake notices a client leaving while it holds the stream
            return self.fake.wait_disconnects(1, timeout)
        finally:
            gate.release()

    def sent_key(self) -> str | None:
        return self.fake.requests[-1].headers.get("x-goog-api-key")

    def sent_body(self) -> bytes:
        return self.fake.requests[-1].body

    def passthrough(self, stream: bool = False) -> tuple[str, bytes]:
        raw = ('{ "contents":[ {"parts":[{"text":"caf\\u00e9 \u2014  two  spaces"}],"role":"user"} ],'
               '\n  "generationConfig" : {"maxOutputTokens":16} }').encode()
        return "gemini", raw


# ---------------------------------------------------------------------------------------
# openai


class _Cut(threading.Event):
    """A hold that breaks the connection instead of waiting."""


class OpenAIUpstream(FakeOpenAI):
    """The fake OpenAI server plus three things an OpenAI server can do that its scripts
    do not: accept more than one key, send response headers (``Retry-After``) and break a
    stream's connection after its first event."""

    def __init__(self, *keys: str) -> None:
        super().__init__(keys[0])
        self.keys = frozenset(keys)
        self.next_headers: dict[str, str] = {}
        self._transport: asyncio.Transport | None = None

    def reset(self) -> None:
        super().reset()
        self.disconnects = 0
        self.next_headers = {}

    def wait_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.disconnects < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.disconnects >= count

    def _auth(self, rec: Any) -> web.Response | None:
        token = rec.headers.get("authorization", "").removeprefix("Bearer ")
        return None if token in self.keys else super()._auth(rec)

    def _app(self) -> web.Application:
        app = super()._app()
        app.middlewares.append(self._extras)
        return app

    @web.middleware
    async def _extras(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self._transport = request.transport
        response: web.StreamResponse = await handler(request)
        headers, self.next_headers = self.next_headers, {}
        if not response.prepared:
            response.headers.update(headers)
        return response

    async def _wait(self, hold: threading.Event) -> None:
        if isinstance(hold, _Cut):
            if self._transport is not None:
                self._transport.abort()
            return
        await super()._wait(hold)


@dataclasses.dataclass
class _EventGate:
    event: threading.Event

    @property
    def released(self) -> bool:
        return self.event.is_set()

    def release(self) -> None:
        self.event.set()


def openai_chunks(model: str, pieces: list[str]) -> list[JSON]:
    """An OpenAI stream: the role with the first piece, one event per piece, the finish."""

    def chunk(delta: JSON, finish: str | None = None) -> JSON:
        return {"id": "chatcmpl-conformance", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}]}

    first, *rest = pieces
    return ([chunk({"role": "assistant", "content": first})]
            + [chunk({"content": p}) for p in rest] + [chunk({}, "stop")])


def openai_usage(usage: JSON) -> JSON:
    """Gemini usageMetadata -> what an OpenAI server reports for the same answer."""
    thoughts = usage.get("thoughtsTokenCount", 0)
    completion = usage["candidatesTokenCount"] + thoughts
    return {"prompt_tokens": usage["promptTokenCount"], "completion_tokens": completion,
            "total_tokens": usage["promptTokenCount"] + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


class OpenAISubject(Subject):
    kind = "openai"
    model = "gpt-4o-mini"
    embed_model = "text-embedding-3-small"
    unsupported = (
        ({"cachedContent": "cachedContents/conformance"}, "cachedContent"),
        ({"tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
    )

    def __init__(self, runner: asyncio.Runner, fake: OpenAIUpstream) -> None:
        self.fake = fake
        self._holds: list[threading.Event] = []
        super().__init__(runner, ProviderSettings(
            name="conformance-openai", type="openai", base_url=fake.base_url,
            api_keys=tuple(Secret(k, f"env:CONFORMANCE_KEY_{i}") for i, k in enumerate(KEYS)),
        ))

    def reset(self) -> None:
        for hold in self._holds:
            hold.set()
        self._holds.clear()
        self.fake.reset()

    def calls(self) -> int:
        return len(self.fake.requests)

    def base_url_at(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/v1"

    def script(self, pieces: list[str], usage: JSON | None = None) -> None:
        reply: JSON = {"content": "".join(pieces)}
        if usage is not None:
            reply["usage"] = openai_usage(usage)
        self.fake.script(reply=reply)

    def hold(self, pieces: list[str]) -> Gate:
        event = threading.Event()
        self._holds.append(event)
        self.fake.script(stream_chunks=openai_chunks(self.model, pieces), hold=event)
        return _EventGate(event)

    def cut(self, pieces: list[str]) -> None:
        self.fake.script(stream_chunks=openai_chunks(self.model, pieces), hold=_Cut())

    def fail(self, status: int, message: str, *, retry_after: int | None = None,
             form: str = "Retry-After") -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        error: JSON = {"message": message, "type": kind}
        if retry_after is not None and form == "RetryInfo":
            # As Google's OpenAI-compatible endpoint answers a 429: Google's status and a
            # RetryInfo in the error object, no Retry-After header.
            error.update(code=status, status="RESOURCE_EXHAUSTED", details=[
                {"@type": RETRY_INFO, "retryDelay": f"{retry_after}s"}])
        elif retry_after is not None:
            self.fake.next_headers = {"Retry-After": str(retry_after)}
        self.fake.script(status=status, error=error)

    def fail_first_event(self, code: int, message: str) -> None:
        self.fake.script(stream_chunks=[
            {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
        ])

    def delay(self, seconds: float) -> None:
        self.fake.script(delay=seconds)

    def saw_disconnect(self, gate: Gate, timeout: float = 5.0) -> bool:
        gate.release()  # this fake notices a client that left when it writes again
        return self.fake.wait_disconnects(1, timeout)

    def sent_key(self) -> str | None:
        auth = self.fake.requests[-1].headers.get("authorization")
        return auth.removeprefix("Bearer ") if auth else None

    def sent_body(self) -> bytes:
        return self.fake.requests[-1].raw

    def passthrough(self, stream: bool = False) -> tuple[str, bytes]:
        streaming = ', "stream":true ,"stream_options":{"include_usage":true}' if stream else ""
        raw = ('{"model":"gpt-4o-mini",  "messages":[{"content":"caf\\u00e9 \u2014 hi",'
               f'"role":"user"}}], "max_tokens" : 16,"user":"conformance"{streaming}}}').encode()
        return "openai.chat", raw


# ---------------------------------------------------------------------------------------
# anthropic


def anthropic_usage(usage: JSON) -> JSON:
    """Gemini usageMetadata -> what Anthropic reports for the same answer (thinking is part
    of its output_tokens)."""
    return {"input_tokens": usage["promptTokenCount"],
            "output_tokens": usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)}


class AnthropicSubject(Subject):
    kind = "anthropic"
    model = "claude-test"
    embed_model = ""  # Anthropic serves no embedding model
    unsupported = (
        ({"cachedContent": "cachedContents/conformance"}, "cachedContent"),
        ({"tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
        ({"generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
    )

    def __init__(self, runner: asyncio.Runner, fake: FakeAnthropic) -> None:
        self.fake = fake
        self._holds: list[threading.Event] = []
        super().__init__(runner, ProviderSettings(
            name="conformance-anthropic", type="anthropic", base_url=fake.base_url,
            api_keys=tuple(Secret(k, f"env:CONFORMANCE_KEY_{i}") for i, k in enumerate(KEYS)),
        ))

    def reset(self) -> None:
        for hold in self._holds:
            hold.set()
        self._holds.clear()
        self.fake.reset()

    def calls(self) -> int:
        return len(self.fake.requests)

    def base_url_at(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def reported(self, usage: JSON) -> JSON:
        thoughts = usage.get("thoughtsTokenCount", 0)
        return {**usage, "candidatesTokenCount": usage["candidatesTokenCount"] + thoughts,
                "thoughtsTokenCount": 0}

    @staticmethod
    def _text(pieces: list[str]) -> list[JSON]:
        return [{"type": "text", "text": "".join(pieces)}]

    def script(self, pieces: list[str], usage: JSON | None = None) -> None:
        self.fake.script(content=self._text(pieces), usage=anthropic_usage(usage) if usage else None,
                         pieces=pieces)

    def hold(self, pieces: list[str]) -> Gate:
        event = threading.Event()
        self._holds.append(event)
        # message_start, ping, content_block_start, then the first piece: held there.
        self.fake.script(content=self._text(pieces), pieces=pieces, hold=event, hold_after=4)
        return _EventGate(event)

    def cut(self, pieces: list[str]) -> None:
        self.fake.script(content=self._text(pieces), pieces=pieces, cut_after=4)

    def fail(self, status: int, message: str, *, retry_after: int | None = None,
             form: str = "Retry-After") -> None:
        # Anthropic says when to retry only in the Retry-After header, whatever the form.
        self.fake.script(status=status, message=message, retry_after=retry_after)

    def fail_first_event(self, code: int, message: str) -> None:
        self.fake.script(error_after=0, error_status=529 if code == 503 else code, message=message)

    def delay(self, seconds: float) -> None:
        self.fake.script(delay=seconds)

    def saw_disconnect(self, gate: Gate, timeout: float = 5.0) -> bool:
        gate.release()  # this fake notices a client that left when it writes again
        deadline = time.monotonic() + timeout
        while self.fake.disconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.fake.disconnects >= 1

    def sent_key(self) -> str | None:
        return self.fake.requests[-1].headers.get("x-api-key")

    def sent_body(self) -> bytes:
        return self.fake.requests[-1].raw

    def passthrough(self, stream: bool = False) -> tuple[str, bytes]:
        streaming = ', "stream" :true' if stream else ""
        raw = ('{"model":"claude-test",  "messages":[{"content":"caf\\u00e9 \u2014 hi",'
               f'"role":"user"}}], "max_tokens" : 16,"metadata":{{"user_id":"conformance"}}{streaming}}}').encode()
        return "anthropic.messages", raw


# ---------------------------------------------------------------------------------------
# vertex


class VertexSubject(Subject):
    """Vertex AI with two service accounts. The pool's keys hold each account's current
    access token, so the fake's token endpoint mints KEY_1 and KEY_2 for them: the
    credential the attempt chose is the bearer token Vertex sees."""

    kind = "vertex"
    model = "gemini-2.5-flash"
    embed_model = "text-embedding-005"
    unsupported = (
        ({"cachedContent": "cachedContents/conformance"}, "cachedContent"),
        ({"store": True}, "store"),
    )

    def __init__(self, runner: asyncio.Runner, fake: FakeVertex) -> None:
        self.fake = fake
        accounts = [
            fake.new_account(f"conformance-{i}@{fake.project}.iam.gserviceaccount.com", key)
            for i, key in enumerate(KEYS)
        ]
        super().__init__(runner, ProviderSettings(
            name="conformance-vertex", type="vertex", base_url=fake.base_url,
            vertex=VertexSettings(
                project=fake.project, location=fake.location,
                credentials=tuple(Secret(a, f"env:CONFORMANCE_SA_{i}") for i, a in enumerate(accounts)),
            ),
        ))

    def reset(self) -> None:
        self.fake.reset()

    def calls(self) -> int:
        return len(self.fake.calls)

    def base_url_at(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def script(self, pieces: list[str], usage: JSON | None = None) -> None:
        self.fake.script(stream=gemini_events(self.model, pieces, usage))

    def hold(self, pieces: list[str]) -> Gate:
        return self.fake.hold_stream(1, stream=gemini_events(self.model, pieces))

    def cut(self, pieces: list[str]) -> None:
        self.fake.script(stream=gemini_events(self.model, pieces), cut_after=1)

    def fail(self, status: int, message: str, *, retry_after: int | None = None,
             form: str = "RetryInfo") -> None:
        error: JSON = {"message": message}
        headers = {}
        if retry_after is not None and form == "RetryInfo":
            error["details"] = [{"@type": RETRY_INFO, "retryDelay": f"{retry_after}s"}]
        elif retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self.fake.script(status=status, error=error, headers=headers)

    def fail_first_event(self, code: int, message: str) -> None:
        self.fake.script(stream=[error_body(code, message)])

    def delay(self, seconds: float) -> None:
        self.fake.script(delay=seconds)

    def saw_disconnect(self, gate: Gate, timeout: float = 5.0) -> bool:
        try:
            return self.fake.wait_disconnects(1, timeout)
        finally:
            gate.release()

    def sent_key(self) -> str | None:
        return self.fake.calls[-1].token

    def sent_body(self) -> bytes:
        return self.fake.calls[-1].body


# ---------------------------------------------------------------------------------------
# local


class LocalSubject(Subject):
    kind = "local"
    upstream = False
    model = "gemma-3-270m"
    embed_model = "gemma-3-270m"
    unsupported = (
        ({"generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
        ({"tools": [{"functionDeclarations": [{"name": "lookup"}]}]}, "tools"),
        ({"cachedContent": "cachedContents/conformance"}, "cachedContent"),
    )

    def __init__(self, runner: asyncio.Runner) -> None:
        super().__init__(runner, ProviderSettings(name="conformance-local", type="local"))
        self._started = 0
        self.reset()

    def reset(self) -> None:
        self._started = self.provider.stats.started  # type: ignore[attr-defined]

    def calls(self) -> int:
        """Generation jobs the model worker began since the last reset."""
        return self.provider.stats.started - self._started  # type: ignore[attr-defined]

    def script(self, pieces: list[str], usage: JSON | None = None) -> None:
        """Nothing to script: the model answers for itself (tests ask it at temperature 0)."""

    def require_upstream(self, fault: str) -> None:
        pytest.skip(f"{fault} cannot happen in-process: the local provider has no upstream "
                    "connection (its in-process faults are tested where they exist)")


# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_subject(kind: str) -> Iterator[Subject]:
    """A started subject of ``kind`` with its fake upstream, stopped afterwards."""
    with contextlib.ExitStack() as stack:
        runner = stack.enter_context(asyncio.Runner())
        subject: Subject
        if kind == "gemini":
            subject = GeminiSubject(runner, stack.enter_context(FakeGemini(*KEYS)))
        elif kind == "openai":
            fake = OpenAIUpstream(*KEYS)
            stack.enter_context(fake)
            subject = OpenAISubject(runner, fake)
        elif kind == "anthropic":
            subject = AnthropicSubject(runner, stack.enter_context(FakeAnthropic(*KEYS)))
        elif kind == "vertex":
            subject = VertexSubject(runner, stack.enter_context(FakeVertex()))
        else:
            subject = LocalSubject(runner)
        try:
            yield subject
        finally:
            subject.reset()  # releases anything still held
            subject.close()

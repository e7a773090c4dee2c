"""The provider conformance suite: the way a new upstream proves itself.

Every test runs against every provider (``subject`` is parametrized over them; see
``subjects.py``): the same requests, the same expectations, real sockets to a fake that
speaks the upstream's wire protocol, or the real bundled model in-process. A new upstream
adds one subject and passes this file unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import aclosing
from typing import Any

import llama_cpp
import orjson
import pytest
from tests.conformance.subjects import KEY_1, KEY_2, KEYS, Subject, open_subject

from gemgate.errors import (
    BadGateway,
    CredentialRejected,
    DeadlineExceeded,
    GatewayError,
    InvalidArgument,
    NotImplementedYet,
    Unavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnreachable,
)
from gemgate.providers.base import Chunk, Provider, UpstreamCall

JSON = dict[str, Any]
GENERATE, STREAM = "generateContent", "streamGenerateContent"
METHODS = pytest.mark.parametrize("method", [GENERATE, STREAM], ids=["generate", "stream"])
PIECES = ["The sea ", "is ", "blue."]  # what a scripted upstream answers
ASK = "Write a sentence about the sea."
# An upstream error message that quotes the gateway's own keys back.
LEAKY = f"conformance says no: the request came with {KEY_1} (pool also has {KEY_2})"
USAGE_KEYS = (
    "promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
    "toolUsePromptTokenCount", "totalTokenCount",
)


@pytest.fixture(scope="module", params=["gemini", "openai", "anthropic", "vertex", "local"])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    with open_subject(request.param) as started:
        yield started


@pytest.fixture(autouse=True)
def _fresh(subject: Subject) -> None:
    subject.reset()


def on_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test on its subject's event loop (where the provider lives)."""

    @functools.wraps(test)
    def run(**kwargs: Any) -> None:
        kwargs["subject"].run(test(**kwargs))

    return run


# -- requests and helpers ---------------------------------------------------------------


def text_request(text: str = ASK, max_tokens: int = 16, **config: Any) -> JSON:
    return {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {"maxOutputTokens": max_tokens, **config},
    }


def story_request(max_tokens: int) -> JSON:
    """A conversation the model continues (a long answer: it runs to ``max_tokens``)."""
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "Tell me a story."}]},
            {"role": "model", "parts": [{"text": "Once upon a time"}]},
        ],
        "generationConfig": {"maxOutputTokens": max_tokens, "temperature": 0, "seed": 7},
    }


def call(subject: Subject, request: JSON, method: str = GENERATE, **kw: Any) -> UpstreamCall:
    return UpstreamCall(model=subject.model, method=method, request=request,  # type: ignore[arg-type]
                        request_id="conformance", **kw)


async def collect(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    async with aclosing(stream) as chunks:  # type: ignore[type-var]
        return [chunk async for chunk in chunks]


async def outcome(provider: Provider, c: UpstreamCall) -> tuple[list[Chunk], BaseException | None]:
    """The chunks a call gave (none for a unary call) and what it raised, if anything."""
    chunks: list[Chunk] = []
    try:
        if c.method == STREAM:
            async with aclosing(provider.stream(c)) as stream:  # type: ignore[type-var]
                async for chunk in stream:
                    chunks.append(chunk)
        else:
            await provider.generate(c)
    except Exception as exc:
        return chunks, exc
    return chunks, None


def text_of(data: JSON) -> str:
    return "".join(
        part["text"]
        for cand in data.get("candidates") or ()
        for part in (cand.get("content") or {}).get("parts") or ()
        if isinstance(part.get("text"), str)
    )


def counts(usage: JSON | None) -> dict[str, int]:
    assert usage is not None, "no usage reported"
    return {key: usage.get(key, 0) for key in USAGE_KEYS}


def assert_consistent(usage: JSON | None) -> None:
    n = counts(usage)
    assert n["promptTokenCount"] >= 1 and n["candidatesTokenCount"] >= 1, usage
    assert n["totalTokenCount"] == (
        n["promptTokenCount"] + n["candidatesTokenCount"] + n["thoughtsTokenCount"]
        + n["toolUsePromptTokenCount"]
    ), usage


def assert_clean(exc: BaseException | None, subject: Subject, *more_secrets: str) -> None:
    """A gateway error (never a raw exception) that shows no upstream secret."""
    assert isinstance(exc, GatewayError), f"expected a GatewayError, got {exc!r}"
    shown = "\n".join(
        [str(exc), exc.message, orjson.dumps(exc.google_body()).decode(), repr(exc.headers())]
    )
    for secret in (*subject.secrets, *more_secrets):
        assert secret not in shown, f"{type(exc).__name__} shows an upstream secret: {shown}"


def assert_stream_shape(chunks: list[Chunk]) -> None:
    """Canonical chunks whose text is their parts' text; only the last one finishes."""
    assert chunks
    for chunk in chunks:
        assert chunk.protocol == "gemini"
        assert orjson.loads(chunk.body) == chunk.json()
        assert chunk.text == text_of(chunk.json())
    assert [c.finishes() for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].json()["candidates"][0]["finishReason"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- 1. generate ---------------------------------------------------------------------------


@on_loop
async def test_generate_answers_text_with_finish_and_usage(subject: Subject) -> None:
    reply = await subject.provider.generate(call(subject, text_request()))
    assert reply.protocol == "gemini"
    data = reply.json()
    assert orjson.loads(reply.body) == data
    cand = data["candidates"][0]
    assert cand["content"]["parts"]
    assert all(isinstance(p.get("text"), str) for p in cand["content"]["parts"])
    assert text_of(data).strip()
    assert cand["finishReason"] in ("STOP", "MAX_TOKENS")
    assert reply.usage == data.get("usageMetadata")  # metered == shown to the client
    assert_consistent(reply.usage)
    assert subject.calls() == 1


# -- 2. stream -----------------------------------------------------------------------------


@on_loop
async def test_stream_chunks_arrive_incrementally(subject: Subject) -> None:
    provider = subject.provider
    if subject.upstream:
        gate = subject.hold(PIECES)
        async with aclosing(provider.stream(call(subject, text_request(), STREAM))) as stream:  # type: ignore[type-var]
            try:
                first = await anext(stream)
                # Received while the upstream still holds back the rest of its answer.
                assert not gate.released
            finally:
                gate.release()
            chunks = [first, *[c async for c in stream]]
        assert first.text == PIECES[0]
        assert "".join(c.text for c in chunks) == "".join(PIECES)
    else:
        # No upstream to hold in-process: the chunks must come as the model decodes each
        # token (tens of ms apart), not all at once when it has finished (microseconds).
        arrivals: list[float] = []
        chunks = []
        async with aclosing(provider.stream(call(subject, story_request(16), STREAM))) as stream:  # type: ignore[type-var]
            async for chunk in stream:
                arrivals.append(time.monotonic())
                chunks.append(chunk)
        assert len(chunks) >= 8
        assert arrivals[-1] - arrivals[0] >= 0.0005 * (len(chunks) - 1), arrivals
    assert_stream_shape(chunks)


@on_loop
async def test_stream_equals_generate_with_cumulative_usage(subject: Subject) -> None:
    request = text_request(temperature=0, seed=7)  # deterministic for a real model too
    subject.script(PIECES)
    reply = await subject.provider.generate(call(subject, request))
    subject.script(PIECES)
    chunks = await collect(subject.provider.stream(call(subject, request, STREAM)))
    assert_stream_shape(chunks)
    assert "".join(c.text for c in chunks) == text_of(reply.json())
    finish = chunks[-1].json()["candidates"][0]["finishReason"]
    assert finish == reply.json()["candidates"][0]["finishReason"]
    usages = [counts(c.usage) for c in chunks if c.usage is not None]
    assert chunks[-1].usage is not None  # the finishing chunk says what the answer cost
    for key in USAGE_KEYS:
        seen = [u[key] for u in usages]
        assert seen == sorted(seen), f"{key} decreases: {seen}"
    assert_consistent(chunks[-1].usage)
    assert counts(chunks[-1].usage) == counts(reply.usage)
    assert subject.calls() == 2


# -- 3. embed ------------------------------------------------------------------------------


@on_loop
async def test_batch_embed_gives_one_vector_per_text(subject: Subject) -> None:
    if not subject.embed_model:  # an upstream with no embedding model refuses cleanly
        c = UpstreamCall(model=subject.model, method="batchEmbedContents", request={"requests": []})
        with pytest.raises(NotImplementedYet):
            await subject.provider.embed(c)
        return
    texts = ["The sea is blue.", "Grass is green."]
    request = {"requests": [{"model": f"models/{subject.embed_model}",
                             "content": {"parts": [{"text": t}]}} for t in texts]}
    reply = await subject.provider.embed(
        UpstreamCall(model=subject.embed_model, method="batchEmbedContents", request=request)
    )
    assert orjson.loads(reply.body) == reply.json()
    vectors = [e["values"] for e in reply.json()["embeddings"]]
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 0
    assert all(isinstance(v, float) for vector in vectors for v in vector)
    assert vectors[0] != vectors[1]


# -- 4. errors -----------------------------------------------------------------------------


@METHODS
@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, UpstreamRejected), (401, CredentialRejected), (403, CredentialRejected),
     (500, BadGateway), (503, Unavailable)],
    ids=["400", "401", "403", "500", "503"],
)
@on_loop
async def test_http_error_maps_to_its_gateway_error(
    subject: Subject, status: int, expected: type[GatewayError], method: str
) -> None:
    subject.require_upstream(f"An HTTP {status} answer")
    subject.fail(status, LEAKY)
    chunks, exc = await outcome(subject.provider, call(subject, text_request(), method))
    assert chunks == []
    assert type(exc) is expected, f"HTTP {status}: expected {expected.__name__}, got {exc!r}"
    assert_clean(exc, subject)
    if status == 400:  # the upstream's verdict on the request is relayed, scrubbed
        assert (exc.code, exc.status) == (400, "INVALID_ARGUMENT")
        assert "conformance says no" in exc.message
    assert subject.calls() == 1  # the adapter never retries


@METHODS
@pytest.mark.parametrize("form", ["RetryInfo", "Retry-After"])
@on_loop
async def test_rate_limit_keeps_the_upstreams_retry_delay(
    subject: Subject, form: str, method: str
) -> None:
    subject.require_upstream("An HTTP 429 answer")
    subject.fail(429, LEAKY, retry_after=7, form=form)
    chunks, exc = await outcome(subject.provider, call(subject, text_request(), method))
    assert chunks == []
    assert type(exc) is UpstreamRateLimited, exc
    assert exc.retry_after == 7
    assert_clean(exc, subject)
    assert subject.calls() == 1


@METHODS
@on_loop
async def test_refused_connection_is_unreachable(subject: Subject, method: str) -> None:
    subject.require_upstream("A refused connection")
    async with subject.another(base_url=subject.base_url_at(closed_port())) as provider:
        chunks, exc = await outcome(provider, call(subject, text_request(), method))
    assert chunks == []
    assert type(exc) is UpstreamUnreachable, exc
    assert_clean(exc, subject)


@METHODS
@on_loop
async def test_read_timeout_is_deadline_exceeded(subject: Subject, method: str) -> None:
    subject.require_upstream("A read timeout")
    subject.delay(2.0)
    async with subject.another(upstream_timeout_s=0.3) as provider:
        started = time.monotonic()
        chunks, exc = await outcome(provider, call(subject, text_request(), method))
        waited = time.monotonic() - started
    assert chunks == []
    assert type(exc) is DeadlineExceeded, exc
    assert waited < 1.5  # it gave up at its own timeout, before the upstream answered
    assert_clean(exc, subject)
    assert subject.calls() == 1


@on_loop
async def test_stream_stalled_after_first_chunk_is_deadline_exceeded(subject: Subject) -> None:
    subject.require_upstream("A stalled connection")
    gate = subject.hold(PIECES)
    try:
        async with subject.another(upstream_timeout_s=0.3) as provider:
            chunks, exc = await outcome(provider, call(subject, text_request(), STREAM))
    finally:
        gate.release()
    assert [c.text for c in chunks] == [PIECES[0]]
    assert type(exc) is DeadlineExceeded, exc
    assert_clean(exc, subject)
    assert subject.calls() == 1


@on_loop
async def test_stream_whose_first_event_is_an_error_raises_before_any_chunk(
    subject: Subject,
) -> None:
    expected: type[GatewayError]
    if subject.upstream:
        subject.fail_first_event(503, LEAKY)  # a 200 stream that opens with an error
        request, expected = text_request(), Unavailable
    else:
        # In-process, the model's own first answer can be a refusal: a prompt longer than
        # its context is refused once tokenized, from the stream, before any chunk.
        request, expected = text_request(" ".join(["word"] * 10_000)), InvalidArgument
    chunks, exc = await outcome(subject.provider, call(subject, request, STREAM))
    assert chunks == []
    assert isinstance(exc, expected), exc
    assert_clean(exc, subject)
    assert subject.calls() == 1


@on_loop
async def test_stream_cut_midway_raises_after_the_first_chunks(subject: Subject) -> None:
    if subject.upstream:
        subject.cut(PIECES)
        chunks, exc = await outcome(subject.provider, call(subject, text_request(), STREAM))
        assert [c.text for c in chunks] == [PIECES[0]]
        assert subject.calls() == 1
    else:
        # In-process, the upstream breaking off is the model shutting down mid-answer.
        exc = None
        async with subject.another() as provider:
            stream = provider.stream(call(subject, story_request(256), STREAM))
            chunks = [await anext(stream)]
            await provider.aclose()
            try:
                async for chunk in stream:
                    chunks.append(chunk)
            except Exception as error:
                exc = error
            _, after = await outcome(provider, call(subject, text_request(max_tokens=1)))
            assert isinstance(after, Unavailable), after  # and it takes no new work
    assert chunks[0].text
    assert not any(c.finishes() for c in chunks)
    assert isinstance(exc, UpstreamError), exc
    assert_clean(exc, subject)


@METHODS
@on_loop
async def test_field_the_adapter_cannot_honour_is_invalid_argument(
    subject: Subject, method: str
) -> None:
    if not subject.unsupported:
        pytest.skip(f"the {subject.kind} provider forwards every field: its upstream judges "
                    "them (the HTTP 400 case)")
    for patch, field in subject.unsupported:
        request = text_request()
        for key, value in patch.items():
            request[key] = {**request[key], **value} if key == "generationConfig" else value
        chunks, exc = await outcome(subject.provider, call(subject, request, method))
        assert chunks == []
        assert isinstance(exc, InvalidArgument), (field, exc)
        assert exc.param == field, (field, exc.message)
        assert field in exc.message
    assert subject.calls() == 0  # refused before anything went upstream


# -- 5. cancellation -----------------------------------------------------------------------


def test_closing_a_stream_stops_the_upstream_work(subject: Subject) -> None:
    provider = subject.provider
    if subject.upstream:
        gate = subject.hold(PIECES * 20)

        async def first_then_close() -> Chunk:
            stream = provider.stream(call(subject, text_request(), STREAM))
            first = await anext(stream)
            await stream.aclose()  # type: ignore[attr-defined]
            return first

        assert subject.run(first_then_close()).text == PIECES[0]
        assert subject.saw_disconnect(gate), "the upstream never saw the client leave"
        assert subject.calls() == 1
        return

    before = dataclasses.replace(provider.stats)  # type: ignore[attr-defined]

    async def first_then_close_then_reuse() -> float:
        stream = provider.stream(call(subject, story_request(256), STREAM))
        await anext(stream)
        closed = time.monotonic()
        await stream.aclose()  # type: ignore[attr-defined]
        while (provider.stats.stopped == before.stopped  # type: ignore[attr-defined]
               and time.monotonic() - closed < 5):
            await asyncio.sleep(0.005)
        stopped_after = time.monotonic() - closed
        # The worker is free again: a one-token answer is not queued behind 256 tokens.
        await provider.generate(call(subject, text_request(max_tokens=1)))
        return stopped_after

    stopped_after = subject.run(first_then_close_then_reuse())
    stats = provider.stats  # type: ignore[attr-defined]
    assert stats.stopped == before.stopped + 1, stats
    assert stats.started == before.started + 2, stats
    assert stopped_after < 1.0, f"the generation stopped {stopped_after:.2f}s after the close"


# -- 6. usage ------------------------------------------------------------------------------


def local_prompt_tokens(provider: Any, request: JSON) -> int:
    """The prompt's length in the model's own vocabulary (read by llama.cpp from the GGUF),
    for the prompt the provider builds from the conversation."""
    vocab = llama_cpp.Llama(model_path=str(provider.model_path), vocab_only=True, verbose=False)
    turns = [(c["role"], "".join(p["text"] for p in c["parts"]).strip())
             for c in request["contents"]]
    prompt = provider.prompt_format.build("", turns)
    tokens: list[int] = []
    for i, segment in enumerate(prompt.segments):  # BOS first, if the model wants one
        tokens += vocab.tokenize(segment.text.encode(), add_bos=i == 0, special=segment.special)
    return len(tokens)


@on_loop
async def test_usage_is_what_the_upstream_counted(subject: Subject) -> None:
    provider = subject.provider
    if subject.upstream:
        usage = {"promptTokenCount": 11, "candidatesTokenCount": 7, "thoughtsTokenCount": 3,
                 "totalTokenCount": 21}
        subject.script(PIECES, usage)
        reply = await provider.generate(call(subject, text_request()))
        subject.script(PIECES, usage)
        chunks = await collect(provider.stream(call(subject, text_request(), STREAM)))
        assert counts(reply.usage) == counts(subject.reported(usage))
        assert counts(chunks[-1].usage) == counts(subject.reported(usage))
        return
    request = story_request(8)
    reply = await provider.generate(call(subject, request))
    chunks = await collect(provider.stream(call(subject, request, STREAM)))
    assert reply.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
    prompt = local_prompt_tokens(provider, request)
    assert counts(reply.usage) == {
        "promptTokenCount": prompt, "candidatesTokenCount": 8, "thoughtsTokenCount": 0,
        "toolUsePromptTokenCount": 0, "totalTokenCount": prompt + 8,
    }
    assert counts(chunks[-1].usage) == counts(reply.usage)


# -- 7. passthrough ------------------------------------------------------------------------


@on_loop
async def test_spoken_protocol_is_forwarded_byte_for_byte(subject: Subject) -> None:
    speaks = subject.provider.speaks
    assert isinstance(speaks, frozenset)
    if subject.passthrough() is None:
        return  # it speaks nothing but the canonical form: the gateway never gives it raw
    for method in (GENERATE, STREAM):
        spoken = subject.passthrough(stream=method == STREAM)
        assert spoken is not None
        protocol, raw = spoken
        assert protocol in speaks
        c = UpstreamCall(model=subject.model, method=method, request=text_request(),  # type: ignore[arg-type]
                         raw=raw, protocol=protocol, client_model=subject.model)
        if method == GENERATE:
            reply = await subject.provider.generate(c)
            assert reply.protocol == protocol
            assert orjson.loads(reply.body)
            assert_consistent(reply.usage)  # metered in Gemini's shape whatever the protocol
        else:
            chunks = await collect(subject.provider.stream(c))
            assert chunks and all(chunk.protocol == protocol for chunk in chunks)
            assert chunks[-1].finishes()
        assert subject.sent_body() == raw


# -- 8. credentials ------------------------------------------------------------------------


@on_loop
async def test_the_attempts_credential_is_the_key_sent_upstream(subject: Subject) -> None:
    provider = subject.provider
    if not subject.upstream:
        assert subject.pool is None  # nothing to send: any credential is ignored
        await provider.generate(call(subject, text_request(max_tokens=1), credential=KEY_2))
        return
    assert subject.secrets == KEYS
    await provider.generate(call(subject, text_request(), credential=KEY_2))
    assert subject.sent_key() == KEY_2
    await collect(provider.stream(call(subject, text_request(), STREAM, credential=KEY_2)))
    assert subject.sent_key() == KEY_2
    await provider.generate(call(subject, text_request(), credential=None))
    assert subject.sent_key() == KEY_1  # the first configured key
    refused = "conformance-upstream-credential-revoked"
    for method in (GENERATE, STREAM):
        chunks, exc = await outcome(provider, call(subject, text_request(), method,
                                                   credential=refused))
        assert subject.sent_key() == refused
        assert chunks == []
        assert type(exc) is CredentialRejected, exc
        assert_clean(exc, subject, refused)
    assert subject.calls() == 5

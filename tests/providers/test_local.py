"""Provider ``local`` against the real bundled Gemma 3 270M (no mocks).

The model is loaded once for the module, inside one long-lived event loop. Outputs are kept
to a few tokens so the module runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import llama_cpp
import pytest

from gemgate.errors import InvalidArgument
from gemgate.providers.base import Chunk, UpstreamCall
from gemgate.providers.local import LocalProvider, default_model_path

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture(scope="module")
def model_path() -> Path:
    return default_model_path()


@pytest.fixture(scope="module")
def env(model_path: Path) -> Iterator[tuple[asyncio.Runner, LocalProvider]]:
    provider = LocalProvider("local", model_path)
    with asyncio.Runner() as runner:
        runner.run(provider.start())
        try:
            yield runner, provider
        finally:
            runner.run(provider.aclose())


@pytest.fixture
def run(env: tuple[asyncio.Runner, LocalProvider]) -> Run[Any]:
    return env[0].run


@pytest.fixture
def provider(env: tuple[asyncio.Runner, LocalProvider]) -> LocalProvider:
    return env[1]


def gen_call(text: str, **config: Any) -> UpstreamCall:
    return UpstreamCall(
        model="gemma-3-270m",
        method="generateContent",
        request={
            "contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": config,
        },
    )


def text_of(data: dict[str, Any]) -> str:
    return "".join(p["text"] for p in data["candidates"][0]["content"]["parts"])


async def collect(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    return [chunk async for chunk in stream]


def test_generate_text_and_exact_usage(
    run: Run[Any], provider: LocalProvider, model_path: Path
) -> None:
    request = {
        "systemInstruction": {"parts": [{"text": "Answer briefly."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi there."}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "Name a colour"}, {"text": " of the sky."}]},
        ],
        "generationConfig": {"maxOutputTokens": 8, "temperature": 0},
    }
    reply = run(provider.generate(UpstreamCall("gemma-3-270m", "generateContent", request)))
    data = reply.json()
    assert data == reply.data
    cand = data["candidates"][0]
    assert cand["content"]["role"] == "model"
    assert text_of(data)
    assert cand["finishReason"] == "MAX_TOKENS"  # capped at 8 tokens
    assert cand["index"] == 0
    assert data["modelVersion"] == "gemma-3-270m"
    assert isinstance(data["responseId"], str) and len(data["responseId"]) >= 16

    vocab = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    prompt = (
        "<bos><start_of_turn>user\nAnswer briefly.\n\nHi there.<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nName a colour of the sky.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    n_prompt = len(vocab.tokenize(prompt.encode(), add_bos=False, special=True))
    usage = data["usageMetadata"]
    assert usage == reply.usage
    assert usage["promptTokenCount"] == n_prompt
    assert usage["candidatesTokenCount"] == 8
    assert usage["totalTokenCount"] == n_prompt + 8
    assert usage["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": n_prompt}]
    assert usage["candidatesTokensDetails"] == [{"modality": "TEXT", "tokenCount": 8}]


def test_stream_chunks_match_generate(run: Run[Any], provider: LocalProvider) -> None:
    config = {"maxOutputTokens": 12, "temperature": 0, "seed": 7}
    call = gen_call("Write a poem about the sea.", **config)
    chunks: list[Chunk] = run(collect(provider.stream(call)))
    assert len(chunks) > 3
    counts = [c.usage["candidatesTokenCount"] for c in chunks if c.usage]
    assert len(counts) == len(chunks) and counts == sorted(counts)
    assert {c.json()["responseId"] for c in chunks} == {chunks[0].json()["responseId"]}
    for chunk in chunks[:-1]:
        assert "finishReason" not in chunk.json()["candidates"][0]
        assert chunk.text == text_of(chunk.json()) != ""
    last = chunks[-1].json()
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert last["usageMetadata"]["candidatesTokenCount"] == 12
    streamed = "".join(c.text for c in chunks)

    reply = run(provider.generate(gen_call("Write a poem about the sea.", **config)))
    assert text_of(reply.json()) == streamed
    assert reply.usage is not None
    assert reply.usage["promptTokenCount"] == last["usageMetadata"]["promptTokenCount"]


def test_multibyte_characters_are_never_split(run: Run[Any], provider: LocalProvider) -> None:
    # These characters are byte-fallback tokens (3-4 tokens each); the model echoes them.
    call = gen_call("𠀋𪚥ꙮ𓀀", maxOutputTokens=16, temperature=0)
    chunks: list[Chunk] = run(collect(provider.stream(call)))
    text = "".join(c.text for c in chunks)
    assert "\ufffd" not in text
    assert "𠀋" in text  # 4 tokens, delivered as one piece
    assert len(chunks) < chunks[-1].json()["usageMetadata"]["candidatesTokenCount"]
    assert text == text_of(run(provider.generate(call)).json())


def test_same_seed_same_output(run: Run[Any], provider: LocalProvider) -> None:
    config = {"maxOutputTokens": 10, "temperature": 1.0, "topK": 64, "topP": 0.95, "seed": 1234}
    first = run(provider.generate(gen_call("Tell me a story.", **config)))
    second = run(provider.generate(gen_call("Tell me a story.", **config)))
    assert text_of(first.json()) == text_of(second.json())


def test_stop_sequences(run: Run[Any], provider: LocalProvider) -> None:
    config: dict[str, Any] = {"maxOutputTokens": 16, "temperature": 0}
    full = text_of(run(provider.generate(gen_call("Write a poem about the sea.", **config))).json())
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    expected = full[: full.find(stop)]
    config["stopSequences"] = [stop, "@@never@@"]

    reply = run(provider.generate(gen_call("Write a poem about the sea.", **config)))
    assert text_of(reply.json()) == expected
    assert reply.json()["candidates"][0]["finishReason"] == "STOP"

    chunks = run(collect(provider.stream(gen_call("Write a poem about the sea.", **config))))
    assert "".join(c.text for c in chunks) == expected
    assert chunks[-1].json()["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {"text": "What is this?"},
                            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                        ],
                    }
                ]
            },
            "contents[0].parts[1].inlineData",
        ),
        (
            {
                "systemInstruction": {"parts": [{"fileData": {"fileUri": "gs://x/y.pdf"}}]},
                "contents": [{"parts": [{"text": "hi"}]}],
            },
            "systemInstruction.parts[0].fileData",
        ),
        (
            {
                "contents": [{"parts": [{"text": "hi"}]}],
                "tools": [{"functionDeclarations": [{"name": "f"}]}],
            },
            "tools",
        ),
        (
            {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"candidateCount": 2}},
            "generationConfig.candidateCount",
        ),
        (
            {
                "contents": [{"parts": [{"text": "hi"}]}],
                "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
            },
            "generationConfig.responseModalities",
        ),
        (
            {
                "contents": [{"parts": [{"text": "hi"}]}],
                "generationConfig": {"responseMimeType": "application/json", "responseSchema": {}},
            },
            "generationConfig.responseSchema",
        ),
    ],
)
def test_unsupported_input_is_rejected(
    run: Run[Any], provider: LocalProvider, request_body: dict[str, Any], field: str
) -> None:
    call = UpstreamCall("gemma-3-270m", "generateContent", request_body)
    with pytest.raises(InvalidArgument) as info:
        run(provider.generate(call))
    assert info.value.param == field
    assert field in info.value.message
    with pytest.raises(InvalidArgument):
        run(collect(provider.stream(call)))


def test_prompt_longer_than_context(run: Run[Any], provider: LocalProvider) -> None:
    with pytest.raises(InvalidArgument) as info:
        run(provider.generate(gen_call("hello " * 9000, maxOutputTokens=4)))
    assert "8191" in info.value.message and "tokens" in info.value.message


def test_concurrent_streams_fifo_and_loop_stays_responsive(
    run: Run[Any], provider: LocalProvider
) -> None:
    async def scenario() -> tuple[list[str], float, int]:
        order: list[str] = []
        ticks = 0
        max_gap = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks, max_gap
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                max_gap = max(max_gap, now - last)
                last = now
                ticks += 1

        async def consume(tag: str, prompt: str) -> dict[str, Any]:
            last: dict[str, Any] = {}
            async for chunk in provider.stream(gen_call(prompt, maxOutputTokens=12, temperature=0)):
                order.append(tag)
                last = chunk.json()
            return last

        tick = asyncio.create_task(ticker())
        first = asyncio.create_task(consume("a", "Count to ten."))
        await asyncio.sleep(0)  # let the first stream submit its job first
        second = asyncio.create_task(consume("b", "Name some fruit."))
        results = await asyncio.gather(first, second)
        done.set()
        await tick
        for last in results:
            assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
        return order, max_gap, ticks

    order, max_gap, ticks = run(scenario())
    assert order == sorted(order)  # FIFO: every chunk of the first before any of the second
    assert order.count("a") > 1 and order.count("b") > 1
    assert ticks > 10
    assert max_gap < 0.5, f"event loop blocked for {max_gap:.3f}s"


def test_closing_a_stream_cancels_its_job(run: Run[Any], provider: LocalProvider) -> None:
    async def scenario() -> None:
        before = dataclasses.replace(provider.stats)
        stream = provider.stream(gen_call("Tell me a very long story.", maxOutputTokens=4000))
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 2:
                break
        # a queued request whose caller gives up is skipped, never run
        queued = asyncio.create_task(
            provider.generate(gen_call("Another long story.", maxOutputTokens=4000))
        )
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await stream.aclose()  # the client went away
        # The next request runs only once the worker has let go of the abandoned ones.
        reply = await provider.generate(gen_call("Hi", maxOutputTokens=4, temperature=0))
        assert reply.json()["usageMetadata"]["candidatesTokenCount"] <= 4
        after = provider.stats
        assert after.stopped - before.stopped == 1  # the long stream stopped early
        assert after.skipped - before.skipped == 1  # the queued one never ran
        assert after.started - before.started == 2  # the long stream and "Hi"

    run(scenario())


def test_embed_batch_and_single(run: Run[Any], provider: LocalProvider) -> None:
    batch = UpstreamCall(
        "gemma-3-270m",
        "batchEmbedContents",
        {
            "requests": [
                {"model": "models/gemma-3-270m", "content": {"parts": [{"text": "hello world"}]}},
                {"model": "models/gemma-3-270m", "content": {"parts": [{"text": "a cat sat"}]}},
            ]
        },
    )
    reply = run(provider.embed(batch))
    vectors = [e["values"] for e in reply.json()["embeddings"]]
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 100
    for v in vectors:
        assert math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-6)
    assert vectors[0] != vectors[1]
    assert reply.usage is not None and reply.usage["promptTokenCount"] > 2

    single = UpstreamCall(
        "gemma-3-270m",
        "embedContent",
        {"content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 16},
    )
    values = run(provider.embed(single)).json()["embedding"]["values"]
    assert values == pytest.approx(vectors[0][:16], abs=1e-6)

    bad = UpstreamCall(
        "gemma-3-270m",
        "batchEmbedContents",
        {
            "requests": [
                {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": ""}}]}}
            ]
        },
    )
    with pytest.raises(InvalidArgument) as info:
        run(provider.embed(bad))
    assert info.value.param == "requests[0].content.parts[0].inlineData"

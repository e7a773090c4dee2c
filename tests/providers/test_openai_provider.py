"""OpenAIProvider against the fake OpenAI server: real sockets, real SSE."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import openai
import pytest
from tests.fakes.openai_upstream import FakeOpenAI

from gemgate.errors import (
    BadGateway,
    DeadlineExceeded,
    InvalidArgument,
    Unavailable,
    UpstreamRateLimited,
    UpstreamRejected,
)
from gemgate.providers.base import Chunk, UpstreamCall
from gemgate.providers.openai import OpenAIProvider

T = TypeVar("T")
MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    server.reset()
    return server


def run(
    fake: FakeOpenAI,
    fn: Callable[[OpenAIProvider], Awaitable[T]],
    *,
    api_key: str | None = None,
    **kw: Any,
) -> T:
    async def main() -> T:
        provider = OpenAIProvider(
            "oa", fake.base_url, (fake.api_key if api_key is None else api_key,), **kw
        )
        await provider.start()
        try:
            return await fn(provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def call(
    text: str = "hello there", method: Any = "generateContent", **request: Any
) -> UpstreamCall:
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}], **request}
    return UpstreamCall(model=MODEL, method=method, request=body, request_id="req-1")


async def collect(provider: OpenAIProvider, c: UpstreamCall) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(c)]


def test_generate(fake: FakeOpenAI) -> None:
    reply = run(fake, lambda p: p.generate(call(generationConfig={"maxOutputTokens": 9})))
    data = reply.json()
    assert data["candidates"][0]["content"]["parts"] == [{"text": "echo: hello there"}]
    assert data["candidates"][0]["finishReason"] == "STOP"
    assert reply.usage == {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5}
    assert json.loads(reply.body) == data
    rec = fake.requests[-1]
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == "Bearer upstream-openai-key"
    assert rec.headers["x-request-id"] == "req-1"
    assert rec.json == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello there"}],
        "max_completion_tokens": 9,
    }


def test_extra_headers_are_sent(fake: FakeOpenAI) -> None:
    run(fake, lambda p: p.generate(call()), headers={"OpenAI-Organization": "org-1"})
    assert fake.requests[-1].headers["openai-organization"] == "org-1"


def test_no_usage_upstream_gives_usage_none(fake: FakeOpenAI) -> None:
    fake.script(omit_usage=True)
    reply = run(fake, lambda p: p.generate(call()))
    assert reply.usage is None
    assert "usageMetadata" not in reply.json()
    fake.script(omit_usage=True)
    chunks = run(fake, lambda p: collect(p, call()))
    assert all(c.usage is None for c in chunks)
    assert "".join(c.text for c in chunks) == "echo: hello there"


def test_stream_with_usage_at_end(fake: FakeOpenAI) -> None:
    chunks = run(fake, lambda p: collect(p, call(method="streamGenerateContent")))
    assert fake.requests[-1].json["stream"] is True
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    assert [c.text for c in chunks] == ["echo: ", "hello ", "there", ""]
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1].json()
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert (
        last["usageMetadata"]
        == chunks[-1].usage
        == {
            "promptTokenCount": 2,
            "candidatesTokenCount": 3,
            "totalTokenCount": 5,
        }
    )
    assert all(json.loads(c.body) == c.json() for c in chunks)


def _scripted_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def test_stream_is_incremental(fake: FakeOpenAI) -> None:
    """The first chunk reaches the caller while the upstream is still holding the rest."""
    gate = threading.Event()
    fake.script(
        stream_chunks=[
            _scripted_chunk({"role": "assistant", "content": "Hel"}),
            _scripted_chunk({"content": "lo"}),
            _scripted_chunk({}, "stop"),
        ],
        hold=gate,
    )

    async def scenario(p: OpenAIProvider) -> list[str]:
        stream = p.stream(call())
        first = await asyncio.wait_for(stream.__anext__(), 5)
        assert not gate.is_set()
        gate.set()
        rest = [c async for c in stream]
        return [first.text] + [c.text for c in rest]

    texts = run(fake, scenario)
    assert texts == ["Hel", "lo", ""]


def test_closing_the_stream_cancels_upstream(fake: FakeOpenAI) -> None:
    gate = threading.Event()
    fake.script(
        stream_chunks=[_scripted_chunk({"role": "assistant", "content": "a"})]
        + [_scripted_chunk({"content": "b"}) for _ in range(50)],
        hold=gate,
    )
    before = fake.disconnects

    async def scenario(p: OpenAIProvider) -> None:
        stream = p.stream(call())
        first = await asyncio.wait_for(stream.__anext__(), 5)
        assert first.text == "a"
        await stream.aclose()  # type: ignore[attr-defined]
        gate.set()

    run(fake, scenario)
    deadline = time.monotonic() + 5
    while fake.disconnects == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.disconnects == before + 1


def test_tool_call_round_trip(fake: FakeOpenAI) -> None:
    tool_call = {
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'},
    }
    tools = [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather by city",
                    "parametersJsonSchema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                    },
                }
            ]
        }
    ]
    fake.script(reply={"content": None, "tool_calls": [tool_call]})
    reply = run(fake, lambda p: p.generate(call("weather?", tools=tools)))
    cand = reply.json()["candidates"][0]
    assert cand["finishReason"] == "STOP"
    fc_part = cand["content"]["parts"][0]
    assert fc_part == {
        "functionCall": {
            "name": "get_weather",
            "args": {"city": "Paris", "days": 2},
            "id": "call_abc",
        }
    }
    assert fake.requests[-1].json["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]

    # the client answers the call; the upstream sees the OpenAI shape
    follow_up = {
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [fc_part]},
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "call_abc",
                            "name": "get_weather",
                            "response": {"temp": 21},
                        }
                    }
                ],
            },
        ],
        "tools": tools,
    }
    reply = run(fake, lambda p: p.generate(UpstreamCall(MODEL, "generateContent", follow_up)))
    messages = fake.requests[-1].json["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_abc"
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Paris",
        "days": 2,
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp": 21}'}

    # streamed: argument fragments become one functionCall part when the choice finishes
    fake.script(reply={"content": None, "tool_calls": [tool_call]})
    chunks = run(fake, lambda p: collect(p, call("weather?", tools=tools)))
    parts = [
        p
        for c in chunks
        for cand in c.json().get("candidates", [])
        for p in cand["content"]["parts"]
    ]
    assert parts == [fc_part]
    assert chunks[-1].json()["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1].usage is not None


def test_connections_are_kept_alive(fake: FakeOpenAI) -> None:
    async def scenario(p: OpenAIProvider) -> None:
        await p.generate(call())
        await collect(p, call())
        await collect(p, call())
        await p.generate(call())

    run(fake, scenario)
    peers = {r.peer for r in fake.requests}
    assert len(fake.requests) == 4 and len(peers) == 1


def test_reasoning_stream_counts_thought_text(fake: FakeOpenAI) -> None:
    fake.script(reply={"content": "yes", "reasoning_content": "let me think"})
    chunks = run(fake, lambda p: collect(p, call()))
    thought = [
        p
        for c in chunks
        for cand in c.json().get("candidates", [])
        for p in cand["content"]["parts"]
        if p.get("thought")
    ]
    assert "".join(p["text"] for p in thought) == "let me think"
    assert "".join(c.text for c in chunks) == "let me thinkyes"


def test_wrong_key_is_bad_gateway_without_the_key(fake: FakeOpenAI) -> None:
    secret = "sk-wrong-0123456789abcdef"
    with pytest.raises(BadGateway) as info:
        run(fake, lambda p: p.generate(call()), api_key=secret)
    assert info.value.code == 502
    assert secret not in info.value.message and secret not in repr(info.value.__cause__)
    assert info.value.__cause__ is None

    with pytest.raises(BadGateway):
        run(fake, lambda p: collect(p, call()), api_key=secret)


def test_client_errors_are_relayed_and_scrubbed(fake: FakeOpenAI) -> None:
    fake.script(
        status=400,
        error={
            "message": "Invalid 'messages[0].content': bad for key upstream-openai-key",
            "type": "invalid_request_error",
            "param": "messages[0].content",
            "code": None,
        },
    )
    with pytest.raises(UpstreamRejected) as info:
        run(fake, lambda p: p.generate(call()))
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert "Invalid 'messages[0].content'" in info.value.message
    assert "upstream-openai-key" not in info.value.message


def test_unknown_model_is_not_found(fake: FakeOpenAI) -> None:
    c = call()
    c.model = "gpt-nope"
    with pytest.raises(UpstreamRejected) as info:
        run(fake, lambda p: p.generate(c))
    assert info.value.code == 404 and "gpt-nope" in info.value.message


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, UpstreamRateLimited), (500, BadGateway), (503, Unavailable), (504, DeadlineExceeded)],
)
def test_server_errors(fake: FakeOpenAI, status: int, error_type: type[Exception]) -> None:
    fake.script(status=status)
    with pytest.raises(error_type):
        run(fake, lambda p: p.generate(call()))
    fake.script(status=status)
    with pytest.raises(error_type):
        run(fake, lambda p: collect(p, call()))


def test_error_event_inside_stream(fake: FakeOpenAI) -> None:
    fake.script(
        stream_chunks=[
            _scripted_chunk({"role": "assistant", "content": "a"}),
            {"error": {"message": "overloaded", "type": "server_error", "code": None}},
        ]
    )
    got: list[str] = []

    async def scenario(p: OpenAIProvider) -> None:
        async for chunk in p.stream(call()):
            got.append(chunk.text)

    with pytest.raises(BadGateway):
        run(fake, scenario)
    assert got == ["a"]


def test_timeout_and_unreachable(fake: FakeOpenAI) -> None:
    fake.script(delay=1.0)
    with pytest.raises(DeadlineExceeded):
        run(fake, lambda p: p.generate(call()), timeout=0.2)
    time.sleep(1.0)  # let the delayed handler finish before the next test

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def unreachable() -> None:
        provider = OpenAIProvider("oa", f"http://127.0.0.1:{port}/v1", "k")
        await provider.start()
        try:
            await provider.generate(call())
        finally:
            await provider.aclose()

    with pytest.raises(BadGateway):
        asyncio.run(unreachable())


def test_untranslatable_request(fake: FakeOpenAI) -> None:
    with pytest.raises(InvalidArgument) as info:
        run(fake, lambda p: p.generate(call(tools=[{"googleSearch": {}}])))
    assert info.value.param == "tools[0].googleSearch"
    assert fake.requests == []


def test_embed(fake: FakeOpenAI) -> None:
    c = UpstreamCall(
        "text-embedding-3-small",
        "embedContent",
        {"content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 4},
    )
    reply = run(fake, lambda p: p.embed(c))
    values = reply.json()["embedding"]["values"]
    assert len(values) == 4
    assert fake.requests[-1].json == {
        "model": "text-embedding-3-small",
        "input": ["hello world"],
        "encoding_format": "float",
        "dimensions": 4,
    }
    assert reply.usage == {"promptTokenCount": 2, "totalTokenCount": 2}

    batch = UpstreamCall(
        "text-embedding-3-small",
        "batchEmbedContents",
        {
            "requests": [
                {"model": "models/x", "content": {"parts": [{"text": "a"}]}},
                {"model": "models/x", "content": {"parts": [{"text": "hello world"}]}},
            ]
        },
    )
    reply = run(fake, lambda p: p.embed(batch))
    embeddings = reply.json()["embeddings"]
    assert len(embeddings) == 2 and embeddings[1]["values"][:4] == values


def passthrough(raw: bytes, model: str = MODEL, stream: bool = False) -> UpstreamCall:
    method: Any = "streamGenerateContent" if stream else "generateContent"
    return UpstreamCall(
        model=MODEL, method=method, request={}, raw=raw, protocol="openai.chat", client_model=model
    )


def test_passthrough_forwards_the_original_bytes(fake: FakeOpenAI) -> None:
    raw = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "x_future": 1}
    ).encode()
    reply = run(fake, lambda p: p.generate(passthrough(raw)))
    assert reply.protocol == "openai.chat"
    assert json.loads(reply.body)["choices"][0]["message"]["content"] == "echo: hi"
    assert reply.usage is not None and reply.usage["promptTokenCount"] == 1
    assert fake.requests[-1].raw == raw

    with pytest.raises(BadGateway):
        run(fake, lambda p: p.generate(passthrough(raw)), api_key="wrong")


def test_passthrough_names_the_upstream_model(fake: FakeOpenAI) -> None:
    raw = json.dumps({"model": "public-alias", "messages": [{"role": "user", "content": "hi"}]}).encode()
    run(fake, lambda p: p.generate(passthrough(raw, model="public-alias")))
    sent = json.loads(fake.requests[-1].raw)
    assert sent["model"] == MODEL and sent["messages"] == [{"role": "user", "content": "hi"}]


def test_passthrough_stream_relays_events_byte_for_byte(fake: FakeOpenAI) -> None:
    raw = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "a b"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()

    async def scenario(p: OpenAIProvider) -> list[Chunk]:
        return [chunk async for chunk in p.stream(passthrough(raw, stream=True))]

    chunks = run(fake, scenario)
    events = [c.body for c in chunks]
    assert fake.requests[-1].raw == raw
    assert all(c.protocol == "openai.chat" for c in chunks)
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") for e in events)
    assert events[-1] == b"data: [DONE]\n\n" and chunks[-1].finishing is True
    usage = json.loads(events[-2][6:])
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == 2
    assert chunks[-2].usage is not None and chunks[-2].usage["promptTokenCount"] == 2
    text = "".join(
        (json.loads(e[6:])["choices"][0]["delta"].get("content") or "") for e in events[:-2]
    )
    assert text == "echo: a b" == "".join(c.text for c in chunks)


def test_not_started() -> None:
    provider = OpenAIProvider("oa", "http://127.0.0.1:9/v1", ("k",))
    with pytest.raises(Exception, match="not started"):
        asyncio.run(provider.generate(call()))


def test_fake_speaks_openai_to_the_official_client(fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
    resp = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi you"}]
    )
    assert resp.choices[0].message.content == "echo: hi you"
    assert resp.usage is not None and resp.usage.prompt_tokens == 2
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hi"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    models = client.models.list()
    assert MODEL in [m.id for m in models.data]
    emb = client.embeddings.create(model="text-embedding-3-small", input=["x"])
    assert len(emb.data[0].embedding) == 8
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=fake.base_url, api_key="nope", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="gpt-nope", messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 1000])
def test_sse_parsing_is_split_proof(size: int) -> None:
    from gemgate.providers.openai import _SSE, _split_events

    wire = (
        b": comment\r\n"
        b'event: message\r\ndata: {"a": 1}\r\n\r\n'
        b'data: {"b":\r\ndata: 2}\n\n'
        b"data:[DONE]\n\n"
        b"data: tail"
    )
    pieces = [wire[k : k + size] for k in range(0, len(wire), size)]
    sse = _SSE()
    events = [e for piece in pieces for e in sse.feed(piece)] + sse.close()
    assert events == [b'{"a": 1}', b'{"b":\n2}', b"[DONE]", b"tail"]

    buf = bytearray()
    start = 0
    raw_events: list[bytes] = []
    for piece in pieces:
        buf += piece
        got, start = _split_events(buf, start)
        raw_events.extend(got)
    assert b"".join(raw_events) + bytes(buf) == wire
    assert raw_events[1] == b'data: {"b":\r\ndata: 2}\n\n'
    assert bytes(buf) == b"data: tail"

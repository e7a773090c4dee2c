"""An OpenAI-compatible upstream (OpenAI, vLLM, llama.cpp server, LiteLLM, ...).

Canonical Gemini requests are translated with :mod:`gemgate.translate` and sent to
``{base_url}/chat/completions``; answers and stream events are translated back into
Gemini JSON. It speaks OpenAI chat: a call carrying a chat client's original bytes
(``call.raw``) is forwarded unchanged (but for the model name, when the upstream's
differs) and answered in OpenAI's protocol, events exactly as the upstream framed them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from gemgate.errors import (
    BadGateway,
    DeadlineExceeded,
    GatewayError,
    Internal,
    InvalidArgument,
    NotImplementedYet,
    upstream_error,
)
from gemgate.providers import http
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.translate import (
    ChatStreamDecoder,
    chat_response_to_gemini,
    gemini_to_chat,
    usage_to_gemini,
)

CHAT = "openai.chat"

_MAX_ERROR_TEXT = 500
_DRAIN_SECONDS = 2.0


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # e.g. integers beyond 64 bits inside function arguments
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _error_body(raw: bytes) -> dict[str, Any]:
    """An upstream error answer as ``{"error": {"message", "details"}}`` for
    :func:`upstream_error`.

    OpenAI's envelope is ``{"error": {"message", "type", "param", "code"}}``; its ``code`` is
    a string such as ``invalid_api_key``, not a Google status, so the message is kept.
    Google's OpenAI-compatible endpoint answers in its own envelope, often wrapped in a
    list, with ``details`` (``RetryInfo`` on a 429): those are kept too.
    """
    message = ""
    details: list[Any] = []
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        message = raw[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    else:
        if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
            parsed = parsed[0]
        if isinstance(parsed, dict):
            err = parsed.get("error")
            if isinstance(err, dict):
                message = str(err.get("message") or err.get("code") or "")
                if isinstance(err.get("details"), list):
                    details = err["details"]
            elif isinstance(err, str):
                message = err
            elif isinstance(parsed.get("message"), str):
                message = parsed["message"]
            elif isinstance(parsed.get("detail"), str):
                message = parsed["detail"]
    if not message and not details:
        return {}
    body: dict[str, Any] = {"message": message[:_MAX_ERROR_TEXT]}
    if details:
        body["details"] = details
    return {"error": body}


def _chunk(data: dict[str, Any]) -> Chunk:
    text: list[str] = []
    for cand in data.get("candidates") or ():
        for part in (cand.get("content") or {}).get("parts") or ():
            if isinstance(part.get("text"), str):
                text.append(part["text"])
    return Chunk(
        body=orjson.dumps(data), usage=data.get("usageMetadata"), data=data, text="".join(text)
    )


class _SSE:
    """Incremental Server-Sent Events parser over a byte stream; yields each event's data."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._data: list[bytes] = []

    def feed(self, piece: bytes) -> list[bytes]:
        buf = self._buf
        start = len(buf)
        buf += piece
        events: list[bytes] = []
        pos = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(buf[pos:nl])
            pos = start = nl + 1
            self._line(line, events)
        if pos:
            del buf[:pos]
        return events

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self._data = []
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)

    def close(self) -> list[bytes]:
        events: list[bytes] = []
        if self._buf:
            self._line(bytes(self._buf), events)
            self._buf.clear()
        self._line(b"", events)
        return events


def _split_events(buf: bytearray, start: int) -> tuple[list[bytes], int]:
    """Cut complete SSE events (each with its blank-line terminator) off the front of buf."""
    events: list[bytes] = []
    while True:
        lf = buf.find(b"\n\n", start)
        crlf = buf.find(b"\r\n\r\n", start)
        ends = [e for e in (lf + 2 if lf >= 0 else -1, crlf + 4 if crlf >= 0 else -1) if e >= 0]
        if not ends:
            return events, max(0, len(buf) - 3)
        end = min(ends)
        events.append(bytes(buf[:end]))
        del buf[:end]
        start = 0


def _delta_text(data: dict[str, Any]) -> str:
    out = []
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            for field in ("content", "reasoning_content"):
                if isinstance(delta.get(field), str):
                    out.append(delta[field])
    return "".join(out)


def _event_payload(event: bytes) -> bytes:
    lines = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines)


class OpenAIProvider:
    """A Provider speaking OpenAI chat/completions to ``base_url`` (e.g. ``http://host/v1``)."""

    speaks = frozenset({CHAT})

    def __init__(
        self,
        name: str,
        base_url: str,
        api_keys: tuple[str, ...] = (),
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 600,
        connect_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._secrets = tuple(k for k in api_keys if k)
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._timeout = float(timeout)
        self._connect_timeout = float(connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=75, ttl_dns_cache=300),
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._connect_timeout, sock_read=self._timeout
            ),
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ------------------------------------------------------------ plumbing

    def _url(self, path: str) -> str:
        if "://" in path or ".." in path or "#" in path or "\\" in path:
            raise InvalidArgument.field("path", "must be a relative upstream path")
        return f"{self.base_url}/{path.lstrip('/')}"

    def _error(self, status: int, raw: bytes, retry_after: str | None = None) -> GatewayError:
        return upstream_error(
            status,
            _error_body(raw),
            provider=self.name,
            secrets=self._secrets,
            retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    def _timed_out(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"Upstream '{self.name}' timed out.")

    def _headers_for(self, call: UpstreamCall, stream: bool = False) -> dict[str, str]:
        credential = call.credential or (self._secrets[0] if self._secrets else None)
        headers = {"X-Request-Id": call.request_id} if call.request_id else {}
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        if stream:
            headers["Accept"] = "text/event-stream"
        return headers

    async def _send(
        self, path: str, payload: bytes, call: UpstreamCall, stream: bool
    ) -> aiohttp.ClientResponse:
        """POST; connection failures become gateway errors by what they mean for a retry."""
        return await http.send(
            self._require_session(),
            self._url(path),
            self.name,
            data=payload,
            headers=self._headers_for(call, stream),
        )

    async def _post(self, path: str, payload: bytes, call: UpstreamCall) -> bytes:
        """POST and read the whole answer; a failed answer raises its gateway error."""
        resp = await self._send(path, payload, call, stream=False)
        raw = await http.read(resp, self.name)
        if not 200 <= resp.status < 300:
            raise self._error(resp.status, raw, resp.headers.get("retry-after"))
        return raw

    async def _open(self, path: str, payload: bytes, call: UpstreamCall) -> aiohttp.ClientResponse:
        """POST and return the response once its status is known to be a success."""
        resp = await self._send(path, payload, call, stream=True)
        if resp.status >= 300:
            try:
                raw = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                raw = b""
            finally:
                resp.release()
            raise self._error(resp.status, raw, resp.headers.get("retry-after"))
        return resp

    async def _pieces(self, resp: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
        try:
            async for piece in resp.content.iter_any():
                yield piece
        except TimeoutError:
            raise self._timed_out() from None
        except aiohttp.ClientError:
            raise BadGateway(f"Upstream '{self.name}' broke off the stream.") from None

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise Internal(f"Provider '{self.name}' is not started.")
        return self._session

    def _load(self, raw: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadGateway(f"Upstream '{self.name}' returned an unreadable answer.") from None
        if not isinstance(data, dict):
            raise BadGateway(f"Upstream '{self.name}' returned an unreadable answer.")
        if "error" in data and "choices" not in data and "data" not in data:
            raise self._event_error(data)
        return data

    def _event_error(self, data: dict[str, Any]) -> GatewayError:
        err = data.get("error")
        code = err.get("code") if isinstance(err, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 502
        return upstream_error(
            status,
            data if isinstance(err, dict) else {"error": {"message": str(err)}},
            provider=self.name,
            secrets=self._secrets,
        )

    # ------------------------------------------------------------ Provider

    async def generate(self, call: UpstreamCall) -> Reply:
        if call.method in ("embedContent", "batchEmbedContents"):
            return await self.embed(call)
        if call.method == "countTokens":
            raise NotImplementedYet(f"Upstream '{self.name}' cannot count tokens.")
        if call.raw is not None and call.protocol == CHAT:
            return await self._forward(call)
        body = gemini_to_chat(call.request, model=call.model, stream=False)
        raw = await self._post("chat/completions", _dumps(body), call)
        data = chat_response_to_gemini(self._load(raw))
        return Reply(body=orjson.dumps(data), data=data, usage=data.get("usageMetadata"))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        if call.raw is not None and call.protocol == CHAT:
            async with aclosing(self._forward_stream(call)) as events:
                async for chunk in events:
                    yield chunk
            return
        body = gemini_to_chat(call.request, model=call.model, stream=True)
        resp = await self._open("chat/completions", _dumps(body), call)
        decoder = ChatStreamDecoder()
        complete = False
        try:
            async with aclosing(self._chat_events(resp)) as events:
                async for data in events:
                    for out in decoder.feed(data):
                        yield _chunk(out)
            for out in decoder.finish():
                yield _chunk(out)
            complete = await _drain(resp)
        finally:
            if complete:
                resp.release()  # back to the pool, kept alive
            else:
                resp.close()  # drop the connection so the upstream stops generating

    async def _chat_events(
        self, resp: aiohttp.ClientResponse
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The JSON chunks of an OpenAI stream, as they arrive, up to ``[DONE]``."""
        sse = _SSE()
        async with aclosing(self._pieces(resp)) as pieces:
            async for piece in pieces:
                for event in sse.feed(piece):
                    for data in self._events(event):
                        if data is None:
                            return
                        yield data
        for event in sse.close():
            for data in self._events(event):
                if data is None:
                    return
                yield data

    def _events(self, event: bytes) -> list[dict[str, Any] | None]:
        """One SSE data payload -> chunk dicts; None marks ``[DONE]``."""
        if event.strip() == b"[DONE]":
            return [None]
        try:
            items = [orjson.loads(event)]
        except orjson.JSONDecodeError:
            # Servers that separate events with a single newline: one JSON object per line.
            try:
                items = [orjson.loads(line) for line in event.split(b"\n") if line.strip()]
            except orjson.JSONDecodeError:
                raise BadGateway(f"Upstream '{self.name}' sent an unreadable event.") from None
        out: list[dict[str, Any] | None] = []
        for item in items:
            if not isinstance(item, dict):
                raise BadGateway(f"Upstream '{self.name}' sent an unreadable event.")
            if "error" in item and not item.get("choices"):
                raise self._event_error(item)
            out.append(item)
        return out

    async def embed(self, call: UpstreamCall) -> Reply:
        single = call.method == "embedContent"
        if single:
            requests: Any = [call.request]
        elif call.method == "batchEmbedContents":
            requests = call.request.get("requests")
            if not isinstance(requests, list) or not requests:
                raise InvalidArgument.field("requests", "must be a non-empty array")
        else:
            raise NotImplementedYet(f"Method {call.method} is not an embedding method.")
        inputs: list[str] = []
        dims: Any = None
        for i, req in enumerate(requests):
            prefix = "" if single else f"requests[{i}]."
            inputs.append(_embed_text(req, prefix))
            size = req.get("outputDimensionality")
            if size is not None:
                if dims is not None and size != dims:
                    raise InvalidArgument.field(
                        f"{prefix}outputDimensionality", "must be the same for every request"
                    )
                dims = size
        body: dict[str, Any] = {"model": call.model, "input": inputs, "encoding_format": "float"}
        if dims is not None:
            body["dimensions"] = dims
        payload = self._load(await self._post("embeddings", _dumps(body), call))
        items = payload.get("data")
        if not isinstance(items, list) or len(items) != len(inputs):
            raise BadGateway(f"Upstream '{self.name}' returned the wrong number of embeddings.")
        items = sorted(items, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
        values = [d.get("embedding") if isinstance(d, dict) else None for d in items]
        if not all(isinstance(v, list) for v in values):
            raise BadGateway(f"Upstream '{self.name}' returned an unreadable embedding.")
        data: dict[str, Any] = (
            {"embedding": {"values": values[0]}}
            if single
            else {"embeddings": [{"values": v} for v in values]}
        )
        usage = payload.get("usage")
        meta = None
        if isinstance(usage, dict):
            prompt = usage.get("prompt_tokens") or 0
            meta = {
                "promptTokenCount": prompt,
                "totalTokenCount": usage.get("total_tokens") or prompt,
            }
        return Reply(body=orjson.dumps(data), data=data, usage=meta)

    # ------------------------------------------------------------ passthrough

    @staticmethod
    def _named(call: UpstreamCall) -> bytes:
        """The client's bytes, naming the upstream's model when the client named another."""
        assert call.raw is not None
        if call.client_model == call.model:
            return call.raw
        return _dumps({**orjson.loads(call.raw), "model": call.model})

    async def _forward(self, call: UpstreamCall) -> Reply:
        body = await self._post("chat/completions", self._named(call), call)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = {}
        usage = data.get("usage") if isinstance(data, dict) else None
        return Reply(
            body=body,
            data=data if isinstance(data, dict) else {},
            usage=usage_to_gemini(usage) if isinstance(usage, dict) else None,
            protocol=CHAT,
        )

    async def _forward_stream(self, call: UpstreamCall) -> AsyncGenerator[Chunk, None]:
        """The upstream's SSE events byte for byte, each with what metering needs."""
        async with aclosing(self._raw_events(call)) as events:
            async for event in events:
                payload = _event_payload(event)
                if not payload:
                    continue
                if payload == b"[DONE]":
                    yield Chunk(body=event, data={}, finishing=True, protocol=CHAT)
                    continue
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(data, dict):
                    continue
                if "error" in data and not data.get("choices"):
                    raise self._event_error(data)
                usage = data.get("usage")
                yield Chunk(
                    body=event,
                    data=data,
                    usage=usage_to_gemini(usage) if isinstance(usage, dict) else None,
                    text=_delta_text(data),
                    finishing=False,
                    protocol=CHAT,
                )

    async def _raw_events(self, call: UpstreamCall) -> AsyncGenerator[bytes, None]:
        """POST a streaming request and yield the upstream's SSE events byte for byte.

        Each item is one complete event including its terminating blank line (the last
        item may be a trailing fragment if the upstream ends without one).
        """
        resp = await self._open("chat/completions", self._named(call), call)
        buf = bytearray()
        start = 0
        complete = False
        try:
            async with aclosing(self._pieces(resp)) as pieces:
                async for piece in pieces:
                    buf += piece
                    events, start = _split_events(buf, start)
                    for event in events:
                        yield event
            if buf:
                yield bytes(buf)
            complete = True
        finally:
            if complete:
                resp.release()
            else:
                resp.close()


async def _drain(resp: aiohttp.ClientResponse) -> bool:
    """Read what follows ``[DONE]`` (normally just the end of the chunked body) so that
    the connection can be reused; False when that does not happen promptly."""
    if resp.content.at_eof():
        return True
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in resp.content.iter_any():
                pass
    except (TimeoutError, aiohttp.ClientError):
        return False
    return True


def _embed_text(req: Any, prefix: str) -> str:
    if not isinstance(req, dict):
        raise InvalidArgument.field(prefix.rstrip(".") or "request", "must be an object")
    content = req.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise InvalidArgument.field(f"{prefix}content.parts", "must be a non-empty array")
    texts: list[str] = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise InvalidArgument.field(
                f"{prefix}content.parts[{j}]", "only text can be embedded by this upstream"
            )
        texts.append(part["text"])
    return "\n".join(texts)

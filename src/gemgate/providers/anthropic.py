"""An Anthropic Messages API upstream (``{base_url}/v1/messages``).

Canonical Gemini requests are translated with :mod:`gemgate.translate.anthropic_outbound`;
answers and streamed events come back as Gemini JSON. It speaks the Messages API: a call
carrying an Anthropic client's original bytes (``call.raw``) is forwarded unchanged (but
for the model name, when the upstream's differs) and answered in Anthropic's protocol,
events exactly as the upstream framed them. Each attempt sends one upstream key
(``x-api-key``) and ``anthropic-version: 2023-06-01``; it never retries. With a client's
bytes go the two client headers that say how to read them, ``anthropic-version`` (the
client's, instead of the default) and ``anthropic-beta`` (joined with the betas named in the
provider's ``headers``); no other client header travels, and a translated request carries
none.
"""

from __future__ import annotations

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
    NotImplementedYet,
    Unavailable,
    upstream_error,
)
from gemgate.providers import http
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.translate.anthropic_common import MESSAGES, as_dict, usage_to_gemini
from gemgate.translate.anthropic_outbound import gemini_to_messages
from gemgate.translate.anthropic_response import message_to_gemini
from gemgate.translate.anthropic_stream import MessageStreamDecoder

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
# Anthropic requires max_tokens; a canonical request that sets no maxOutputTokens gets this.
DEFAULT_MAX_TOKENS = 4096
OVERLOADED = 529
MAX_ERROR_TEXT = 500
MAX_EVENT_BYTES = 64 * 1024 * 1024
# HTTP status of each error type Anthropic names (in a stream's ``error`` event).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": OVERLOADED,
}


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits inside tool input
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def split_events(buf: bytearray) -> list[bytes]:
    """Cut the complete SSE events (each with its blank-line terminator) off ``buf``."""
    events: list[bytes] = []
    while True:
        lf, crlf = buf.find(b"\n\n"), buf.find(b"\r\n\r\n")
        ends = [e for e in (lf + 2 if lf >= 0 else -1, crlf + 4 if crlf >= 0 else -1) if e >= 0]
        if not ends:
            if len(buf) > MAX_EVENT_BYTES:
                raise BadGateway(f"An upstream stream event exceeds {MAX_EVENT_BYTES} bytes.")
            return events
        end = min(ends)
        events.append(bytes(buf[:end]))
        del buf[:end]


def event_data(event: bytes) -> dict[str, Any] | None:
    """The JSON ``data`` of one SSE event (None: no data, or not a JSON object)."""
    lines = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        data = orjson.loads(b"\n".join(lines))
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _delta_text(data: dict[str, Any]) -> str:
    delta = data.get("delta")
    if not isinstance(delta, dict):
        return ""
    text = delta.get("text", delta.get("thinking"))
    return text if isinstance(text, str) else ""


class AnthropicProvider:
    """A Provider speaking Anthropic's Messages API to ``base_url``."""

    speaks = frozenset({MESSAGES})

    def __init__(
        self,
        name: str,
        base_url: str = DEFAULT_BASE_URL,
        api_keys: tuple[str, ...] = (),
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 600,
        connect_timeout: float = 10.0,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._secrets = tuple(k for k in api_keys if k)
        self._headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION, **(headers or {})}
        self._timeout = float(timeout)
        self._connect_timeout = float(connect_timeout)
        self._max_tokens = default_max_tokens
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=75, ttl_dns_cache=300),
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout, sock_read=self._timeout),
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ------------------------------------------------------------ errors

    def _error(self, status: int, raw: bytes, retry_after: str | None = None) -> GatewayError:
        message = ""
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = raw[:MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
        else:
            err = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(err, dict):
                message = str(err.get("message") or err.get("type") or "")
        if status == OVERLOADED:
            return Unavailable(f"Upstream '{self.name}' is overloaded; try again later.")
        return upstream_error(
            status,
            {"error": {"message": message[:MAX_ERROR_TEXT]}} if message else {},
            provider=self.name,
            secrets=self._secrets,
            retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    def _event_error(self, data: dict[str, Any]) -> GatewayError:
        err = as_dict(data.get("error"))
        status = ERROR_STATUS.get(str(err.get("type")), 502)
        return self._error(status, orjson.dumps(data))

    def _timed_out(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"Upstream '{self.name}' timed out.")

    # ------------------------------------------------------------ HTTP

    def _headers_for(self, call: UpstreamCall, stream: bool) -> dict[str, str]:
        credential = call.credential or (self._secrets[0] if self._secrets else None)
        headers = {"x-api-key": credential} if credential else {}
        if stream:
            headers["Accept"] = "text/event-stream"
        if call.raw is not None and call.protocol == MESSAGES:
            headers.update(self._client_headers(call.headers))
        return headers

    def _client_headers(self, sent: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        version = sent.get("anthropic-version")
        if version:
            out["anthropic-version"] = version
        betas = [b.strip() for b in sent.get("anthropic-beta", "").split(",") if b.strip()]
        if betas:
            mine = next((v for k, v in self._headers.items() if k.lower() == "anthropic-beta"), "")
            joined = [b.strip() for b in mine.split(",") if b.strip()]
            joined += [b for b in betas if b not in joined]
            out["anthropic-beta"] = ",".join(joined)
        return out

    async def _send(self, payload: bytes, call: UpstreamCall, stream: bool) -> aiohttp.ClientResponse:
        if self._session is None or self._session.closed:
            raise Internal(f"Provider '{self.name}' is not started.")
        return await http.send(
            self._session,
            f"{self.base_url}/v1/messages",
            self.name,
            data=payload,
            headers=self._headers_for(call, stream),
        )

    async def _post(self, payload: bytes, call: UpstreamCall) -> tuple[bytes, dict[str, Any]]:
        resp = await self._send(payload, call, stream=False)
        raw = await http.read(resp, self.name)
        if not 200 <= resp.status < 300:
            raise self._error(resp.status, raw, resp.headers.get("retry-after"))
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise BadGateway(f"Upstream '{self.name}' returned an unreadable answer.")
        if data.get("type") == "error":
            raise self._event_error(data)
        return raw, data

    async def _events(self, payload: bytes, call: UpstreamCall) -> AsyncGenerator[bytes, None]:
        """POST a streaming request; yield each SSE event byte for byte, as it completes."""
        resp = await self._send(payload, call, stream=True)
        if resp.status >= 300:
            try:
                raw = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                raw = b""
            finally:
                resp.release()
            raise self._error(resp.status, raw, resp.headers.get("retry-after"))
        buf = bytearray()
        complete = False
        try:
            async for piece in resp.content.iter_any():
                buf += piece
                for event in split_events(buf):
                    yield event
            if buf.strip():
                yield bytes(buf)
            complete = True
        except TimeoutError:
            raise self._timed_out() from None
        except aiohttp.ClientError:
            raise BadGateway(f"Upstream '{self.name}' broke off the stream.") from None
        finally:
            if complete:
                resp.release()
            else:
                resp.close()  # drop the connection so the upstream stops generating

    # ------------------------------------------------------------ Provider

    def _body(self, call: UpstreamCall, stream: bool) -> bytes:
        if call.raw is not None and call.protocol == MESSAGES:
            if call.client_model == call.model:
                return call.raw
            return _dumps({**orjson.loads(call.raw), "model": call.model})
        return _dumps(
            gemini_to_messages(call.request, model=call.model, stream=stream, default_max_tokens=self._max_tokens)
        )

    async def generate(self, call: UpstreamCall) -> Reply:
        if call.method not in ("generateContent", "streamGenerateContent"):
            raise NotImplementedYet(f"Upstream '{self.name}' cannot serve {call.method}.")
        raw, msg = await self._post(self._body(call, stream=False), call)
        usage = msg.get("usage")
        if call.raw is not None and call.protocol == MESSAGES:
            meta = usage_to_gemini(usage) if isinstance(usage, dict) else None
            return Reply(body=raw, data=msg, usage=meta, protocol=MESSAGES)
        data = message_to_gemini(msg)
        return Reply(body=orjson.dumps(data), data=data, usage=data.get("usageMetadata"))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        passthrough = call.raw is not None and call.protocol == MESSAGES
        decoder = MessageStreamDecoder()
        usage: dict[str, Any] = {}
        async with aclosing(self._events(self._body(call, stream=True), call)) as events:
            async for event in events:
                data = event_data(event)
                if data is None:
                    continue
                kind = data.get("type")
                if kind == "error":
                    raise self._event_error(data)
                if passthrough:
                    yield self._passthrough_chunk(event, data, kind, usage)
                    continue
                for out in decoder.feed(data):
                    yield _chunk(out)

    @staticmethod
    def _passthrough_chunk(event: bytes, data: dict[str, Any], kind: Any, usage: dict[str, Any]) -> Chunk:
        """An upstream event as it came, with what metering needs: the final usage comes with
        ``message_delta``, and ``message_stop`` ends the answer (so it is the event held
        until the usage record is committed)."""
        if kind == "message_start":
            msg = data.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("usage"), dict):
                usage.update({k: v for k, v in msg["usage"].items() if v is not None})
        elif kind == "message_delta":
            if isinstance(data.get("usage"), dict):
                usage.update({k: v for k, v in data["usage"].items() if v is not None})
            return Chunk(body=event, data=data, usage=usage_to_gemini(usage), finishing=False, protocol=MESSAGES)
        elif kind == "message_stop":
            return Chunk(body=event, data=data, usage=usage_to_gemini(usage), finishing=True, protocol=MESSAGES)
        return Chunk(body=event, data=data, text=_delta_text(data), finishing=False, protocol=MESSAGES)

    async def embed(self, call: UpstreamCall) -> Reply:
        raise NotImplementedYet(f"Upstream '{self.name}' has no embedding models.")


def _chunk(data: dict[str, Any]) -> Chunk:
    """A canonical chunk; its usage counts for billing only once the answer finished (before
    that Anthropic has not said how many tokens it generated, so relayed text is counted)."""
    text: list[str] = []
    finished = False
    for cand in data.get("candidates") or ():
        finished = finished or bool(cand.get("finishReason"))
        for part in (cand.get("content") or {}).get("parts") or ():
            if isinstance(part.get("text"), str):
                text.append(part["text"])
    return Chunk(
        body=orjson.dumps(data),
        usage=data.get("usageMetadata") if finished else None,
        data=data,
        text="".join(text),
        finishing=finished,
    )

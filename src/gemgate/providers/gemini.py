"""Provider ``gemini``: Google AI Studio's generativelanguage REST API (or anything speaking it).

It speaks the canonical protocol: the client's original request bytes are forwarded
unchanged when the door received Gemini (the door has validated them), with the attempt's
upstream key and the upstream model name in the URL. Streams are read with ``alt=sse`` and
relayed event by event as they arrive. It never retries: the attempt loop does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gemgate.errors import (
    BadGateway,
    DeadlineExceeded,
    GatewayError,
    UpstreamUnreachable,
    upstream_error,
)
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.providers.gemini_live import LiveUpstream, open_live
from gemgate.providers.sse import sse_events
from gemgate.types.canonical import GEMINI
from gemgate.types.response import candidate_text


def retry_after_header(resp: aiohttp.ClientResponse) -> int | None:
    value = resp.headers.get("retry-after", "")
    return int(value) if value.isdigit() else None


#: The response header in which the Gemini API says which service tier served a call.
SERVICE_TIER_HEADER = "x-gemini-service-tier"


class GeminiProvider:
    speaks = frozenset({GEMINI})

    def __init__(
        self,
        name: str,
        base_url: str,
        api_keys: tuple[str, ...] = (),
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        api_version: str = "v1beta",
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")  # the upstream's root, for its resource APIs
        self.api_version = api_version
        self._base = base_url.rstrip("/") + f"/{api_version}/models/"
        self._secrets = tuple(k for k in api_keys if k)
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            headers=self._headers,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise BadGateway(f"provider {self.name} is not started")
        return self._session

    # --- helpers -------------------------------------------------------------------------

    def _error(self, resp: aiohttp.ClientResponse, body: bytes) -> GatewayError:
        try:
            parsed: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
            parsed = parsed[0]  # JSON-array streams wrap their error in a list
        return upstream_error(
            resp.status,
            parsed,
            provider=self.name,
            secrets=self._secrets,
            retry_after=retry_after_header(resp),
        )

    async def _post(self, url: str, body: bytes, call: UpstreamCall) -> aiohttp.ClientResponse:
        credential = call.credential or (self._secrets[0] if self._secrets else None)
        headers = {"x-goog-api-key": credential} if credential else None
        try:
            return await self.session.post(url, data=body, headers=headers)
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamUnreachable(f"Upstream '{self.name}' did not accept a connection in time.") from None
        except TimeoutError:
            # The request was sent and no answer came in time: it may be being worked on.
            raise DeadlineExceeded(f"Upstream '{self.name}' timed out.") from None
        except aiohttp.ClientConnectionError as exc:
            kind = type(exc).__name__
            _drop_frames(exc)
            raise UpstreamUnreachable(f"Upstream '{self.name}' could not be reached: {kind}") from None

    async def _unary(self, model: str, method: str, body: bytes, call: UpstreamCall) -> Reply:
        resp = await self._post(f"{self._base}{model}:{method}", body, call)
        try:
            try:
                data = await resp.read()
            except TimeoutError:
                raise DeadlineExceeded(f"Upstream '{self.name}' timed out.") from None
            except aiohttp.ClientError:
                raise BadGateway(f"Upstream '{self.name}' broke off its answer.") from None
            if resp.status != 200:
                raise self._error(resp, data)
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise BadGateway(f"Upstream '{self.name}' sent an answer that is not JSON.") from None
            if not isinstance(parsed, dict):
                raise BadGateway(f"Upstream '{self.name}' sent an unexpected answer.")
            usage = parsed.get("usageMetadata")
            return Reply(
                body=data,
                data=parsed,
                usage=usage if isinstance(usage, dict) else None,
                service_tier=resp.headers.get(SERVICE_TIER_HEADER),
            )
        finally:
            resp.release()

    @staticmethod
    def _body(call: UpstreamCall) -> bytes:
        return call.raw if call.raw is not None else orjson.dumps(call.request)

    # --- Live API ---------------------------------------------------------------------------

    async def open_live(self, call: UpstreamCall, setup_frame: bytes, setup_timeout: float) -> LiveUpstream:
        """A Live session upstream, set up with ``setup_frame`` (which names the upstream
        model), on the attempt's key."""
        return await open_live(
            self.session,
            self.base_url,
            call.credential or (self._secrets[0] if self._secrets else None),
            setup_frame,
            provider=self.name,
            secrets=self._secrets,
            setup_timeout=setup_timeout,
        )

    # --- Provider --------------------------------------------------------------------------

    async def generate(self, call: UpstreamCall) -> Reply:
        return await self._unary(call.model, "generateContent", self._body(call), call)

    async def count_tokens(self, call: UpstreamCall) -> Reply:
        return await self._unary(call.model, "countTokens", self._body(call), call)

    async def embed(self, call: UpstreamCall) -> Reply:
        upstream_name = f"models/{call.model}"
        if call.method == "batchEmbedContents":
            # Each inner request names its model; it must be the upstream's name.
            batch = {
                "requests": [{**r, "model": upstream_name} for r in call.request.get("requests", [])]
            }
            return await self._unary(call.model, "batchEmbedContents", orjson.dumps(batch), call)
        if "model" in call.request:
            body = orjson.dumps({**call.request, "model": upstream_name})
        else:
            body = self._body(call)
        return await self._unary(call.model, "embedContent", body, call)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        url = f"{self._base}{call.model}:streamGenerateContent?alt=sse"
        resp = await self._post(url, self._body(call), call)
        try:
            if resp.status != 200:
                raise self._error(resp, await resp.read())
            tier = resp.headers.get(SERVICE_TIER_HEADER)
            async for payload in sse_events(resp.content.iter_any()):
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise BadGateway(f"Upstream '{self.name}' sent a malformed stream event.") from None
                if not isinstance(data, dict):
                    raise BadGateway(f"Upstream '{self.name}' sent an unexpected stream event.")
                if "error" in data:
                    err = data["error"]
                    status = err.get("code", 500) if isinstance(err, dict) else 500
                    raise upstream_error(
                        int(status) if isinstance(status, int) else 500,
                        data,
                        provider=self.name,
                        secrets=self._secrets,
                    )
                usage = data.get("usageMetadata")
                yield Chunk(
                    body=payload,
                    data=data,
                    usage=usage if isinstance(usage, dict) else None,
                    text=candidate_text(data),
                    service_tier=tier,
                )
        except TimeoutError:
            raise DeadlineExceeded(f"Upstream '{self.name}' stopped sending its stream.") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            raise BadGateway(f"Upstream '{self.name}' broke off its stream.") from None
        finally:
            resp.close()


def _drop_frames(exc: BaseException) -> None:
    """Clear the tracebacks of a failed connect (and what it chained): their frames form
    reference cycles that only the garbage collector would free, and a channel that
    refuses every connection would otherwise make it run every few requests."""
    seen: BaseException | None = exc
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__

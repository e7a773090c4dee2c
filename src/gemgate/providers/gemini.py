"""Provider ``gemini``: Google AI Studio's generativelanguage REST API (or anything speaking it).

The client's original request bytes are forwarded unchanged (the door has validated them),
with the provider's own key and the upstream model name in the URL. Streams are read with
``alt=sse`` and relayed event by event as they arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gemgate.errors import BadGateway, DeadlineExceeded, GatewayError, upstream_error
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.providers.sse import sse_events
from gemgate.types.response import candidate_text

RETRY_STATUSES = frozenset({500, 502, 503, 504})
RETRY_DELAYS = (0.1, 0.4)


class GeminiProvider:
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 600.0,
        api_version: str = "v1beta",
    ) -> None:
        self.name = name
        self._base = base_url.rstrip("/") + f"/{api_version}/models/"
        self._api_key = api_key
        self._headers = {
            "x-goog-api-key": api_key,
            "content-type": "application/json",
            **(headers or {}),
        }
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
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

    def _error(self, status: int, body: bytes) -> GatewayError:
        try:
            parsed: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
            parsed = parsed[0]  # JSON-array streams wrap their error in a list
        return upstream_error(status, parsed, provider=self.name, secrets=(self._api_key,))

    async def _post(self, url: str, body: bytes) -> aiohttp.ClientResponse:
        """POST with retries on connection failures and 5xx, before any answer is relayed."""
        attempt = 0
        while True:
            try:
                resp = await self.session.post(url, data=body, headers=self._headers)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                if attempt < len(RETRY_DELAYS):
                    await asyncio.sleep(RETRY_DELAYS[attempt])
                    attempt += 1
                    continue
                raise BadGateway(f"Upstream '{self.name}' could not be reached: {type(exc).__name__}") from None
            except TimeoutError:
                raise DeadlineExceeded(f"Upstream '{self.name}' timed out.") from None
            if resp.status in RETRY_STATUSES and attempt < len(RETRY_DELAYS):
                resp.release()
                await asyncio.sleep(RETRY_DELAYS[attempt])
                attempt += 1
                continue
            return resp

    async def _unary(self, model: str, method: str, body: bytes) -> Reply:
        resp = await self._post(f"{self._base}{model}:{method}", body)
        try:
            try:
                data = await resp.read()
            except TimeoutError:
                raise DeadlineExceeded(f"Upstream '{self.name}' timed out.") from None
            except aiohttp.ClientError:
                raise BadGateway(f"Upstream '{self.name}' broke off its answer.") from None
            if resp.status != 200:
                raise self._error(resp.status, data)
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise BadGateway(f"Upstream '{self.name}' sent an answer that is not JSON.") from None
            if not isinstance(parsed, dict):
                raise BadGateway(f"Upstream '{self.name}' sent an unexpected answer.")
            usage = parsed.get("usageMetadata")
            return Reply(body=data, data=parsed, usage=usage if isinstance(usage, dict) else None)
        finally:
            resp.release()

    # --- Provider --------------------------------------------------------------------------

    async def generate(self, call: UpstreamCall) -> Reply:
        body = call.raw if call.raw is not None else orjson.dumps(call.request)
        return await self._unary(call.model, "generateContent", body)

    async def count_tokens(self, call: UpstreamCall) -> Reply:
        body = call.raw if call.raw is not None else orjson.dumps(call.request)
        return await self._unary(call.model, "countTokens", body)

    async def embed(self, call: UpstreamCall) -> Reply:
        upstream_name = f"models/{call.model}"
        if call.method == "batchEmbedContents":
            # Each inner request names its model; it must be the upstream's name.
            batch = {
                "requests": [{**r, "model": upstream_name} for r in call.request.get("requests", [])]
            }
            return await self._unary(call.model, "batchEmbedContents", orjson.dumps(batch))
        if "model" in call.request:
            body = orjson.dumps({**call.request, "model": upstream_name})
        else:
            body = call.raw if call.raw is not None else orjson.dumps(call.request)
        return await self._unary(call.model, "embedContent", body)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        body = call.raw if call.raw is not None else orjson.dumps(call.request)
        resp = await self._post(f"{self._base}{call.model}:streamGenerateContent?alt=sse", body)
        try:
            if resp.status != 200:
                raise self._error(resp.status, await resp.read())
            async for payload in sse_events(resp.content):
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise BadGateway(f"Upstream '{self.name}' sent a malformed stream event.") from None
                if not isinstance(data, dict):
                    raise BadGateway(f"Upstream '{self.name}' sent an unexpected stream event.")
                if "error" in data:
                    status = data["error"].get("code", 500) if isinstance(data["error"], dict) else 500
                    raise upstream_error(
                        int(status) if isinstance(status, int) else 500,
                        data,
                        provider=self.name,
                        secrets=(self._api_key,),
                    )
                usage = data.get("usageMetadata")
                yield Chunk(
                    body=payload,
                    data=data,
                    usage=usage if isinstance(usage, dict) else None,
                    text=candidate_text(data),
                )
        except TimeoutError:
            raise DeadlineExceeded(f"Upstream '{self.name}' stopped sending its stream.") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            raise BadGateway(f"Upstream '{self.name}' broke off its stream.") from None
        finally:
            resp.close()

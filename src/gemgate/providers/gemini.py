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

from gemgate.errors import BadGateway, DeadlineExceeded, GatewayError, upstream_error
from gemgate.providers import gemini_interactions, http
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.providers.gemini_live import LiveUpstream, open_live
from gemgate.providers.sse import sse_events
from gemgate.translate.interactions_request import INTERACTIONS
from gemgate.types.canonical import GEMINI
from gemgate.types.response import candidate_text

#: The response header in which the Gemini API says which service tier served a call.
SERVICE_TIER_HEADER = "x-gemini-service-tier"


# --- Google's wire, shared with the Vertex adapter ---------------------------------------


def google_session(headers: dict[str, str], timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """One pooled, keep-alive client for a Google upstream."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        headers=headers,
    )


def error_json(body: bytes) -> Any:
    """A failed answer's JSON (Google's envelope), unwrapped from the list that JSON-array
    streams put it in; None when it is not JSON."""
    try:
        parsed: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        return parsed[0]
    return parsed


def answer_json(data: bytes, provider: str) -> dict[str, Any]:
    """A successful answer's JSON object."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadGateway(f"Upstream '{provider}' sent an answer that is not JSON.") from None
    if not isinstance(parsed, dict):
        raise BadGateway(f"Upstream '{provider}' sent an unexpected answer.")
    return parsed


def usage_of(data: dict[str, Any]) -> dict[str, Any] | None:
    usage = data.get("usageMetadata")
    return usage if isinstance(usage, dict) else None


async def gemini_events(
    resp: aiohttp.ClientResponse, provider: str, secrets: tuple[str, ...]
) -> AsyncIterator[tuple[bytes, dict[str, Any]]]:
    """The events of a ``streamGenerateContent?alt=sse`` answer, as (bytes, JSON), as they
    arrive; an error event raises its mapped gateway error."""
    try:
        async for payload in sse_events(resp.content.iter_any()):
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise BadGateway(f"Upstream '{provider}' sent a malformed stream event.") from None
            if not isinstance(data, dict):
                raise BadGateway(f"Upstream '{provider}' sent an unexpected stream event.")
            if "error" in data:
                err = data["error"]
                status = err.get("code", 500) if isinstance(err, dict) else 500
                raise upstream_error(
                    status if isinstance(status, int) else 500, data, provider=provider, secrets=secrets
                )
            yield payload, data
    except TimeoutError:
        raise DeadlineExceeded(f"Upstream '{provider}' stopped sending its stream.") from None
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        raise BadGateway(f"Upstream '{provider}' broke off its stream.") from None


class GeminiProvider:
    speaks = frozenset({GEMINI, INTERACTIONS})  # Interactions requests go to /interactions

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
        self._session = google_session(self._headers, self._timeout)

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
        return upstream_error(
            resp.status,
            error_json(body),
            provider=self.name,
            secrets=self._secrets,
            retry_after=http.retry_after(resp),
        )

    async def _post(self, url: str, body: bytes, call: UpstreamCall) -> aiohttp.ClientResponse:
        credential = call.credential or (self._secrets[0] if self._secrets else None)
        headers = {"x-goog-api-key": credential} if credential else None
        return await http.send(self.session, url, self.name, data=body, headers=headers)

    async def _unary(self, model: str, method: str, body: bytes, call: UpstreamCall) -> Reply:
        resp = await self._post(f"{self._base}{model}:{method}", body, call)
        data = await http.read(resp, self.name)
        if resp.status != 200:
            raise self._error(resp, data)
        parsed = answer_json(data, self.name)
        return Reply(
            body=data,
            data=parsed,
            usage=usage_of(parsed),
            service_tier=resp.headers.get(SERVICE_TIER_HEADER),
        )

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
        if call.protocol == INTERACTIONS:
            return await gemini_interactions.generate(self, call)
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
        if call.protocol == INTERACTIONS:
            async for chunk in gemini_interactions.stream(self, call):
                yield chunk
            return
        url = f"{self._base}{call.model}:streamGenerateContent?alt=sse"
        resp = await self._post(url, self._body(call), call)
        try:
            if resp.status != 200:
                raise self._error(resp, await resp.read())
            tier = resp.headers.get(SERVICE_TIER_HEADER)
            async for payload, data in gemini_events(resp, self.name, self._secrets):
                yield Chunk(
                    body=payload,
                    data=data,
                    usage=usage_of(data),
                    text=candidate_text(data),
                    service_tier=tier,
                )
        finally:
            resp.close()

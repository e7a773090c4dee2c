"""Provider ``vertex``: Gemini models on Google Cloud's Vertex AI.

Models are addressed as
``{host}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}``
with ``https://aiplatform.googleapis.com`` for the ``global`` location and
``https://{location}-aiplatform.googleapis.com`` for a region (``base_url`` replaces the
host, for private endpoints). Calls carry an OAuth access token minted from a service
account (:mod:`gemgate.providers.vertex_auth`), refreshed before it would lapse.

Vertex takes the Gemini JSON body with differences (:mod:`gemgate.translate.vertex`): the
client's bytes are never forwarded as they are, so ``speaks`` is empty and every call is
the translated canonical request. Answers are Gemini's JSON and pass to the client
untouched. Errors are Google's envelope, mapped by :func:`gemgate.errors.upstream_error`;
an access token Vertex calls expired is dropped so that the next call mints a new one. The
tier Vertex served a call in is ``usageMetadata.trafficType``. It never retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gemgate.errors import (
    ERROR_INFO,
    BadGateway,
    CredentialRejected,
    GatewayError,
    Unavailable,
    upstream_error,
)
from gemgate.providers import http
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.providers.gemini import (
    answer_json,
    error_json,
    gemini_events,
    google_session,
    usage_of,
)
from gemgate.providers.vertex_auth import UNMINTED, ServiceAccount, TokenMinter
from gemgate.routing.keys import KeyPool, UpstreamKey
from gemgate.settings import ProviderSettings
from gemgate.translate import vertex as wire
from gemgate.types.response import candidate_text

GLOBAL_HOST = "https://aiplatform.googleapis.com"


def default_host(location: str) -> str:
    return GLOBAL_HOST if location == "global" else f"https://{location}-aiplatform.googleapis.com"


def _traffic_type(data: dict[str, Any]) -> str | None:
    usage = data.get("usageMetadata")
    value = usage.get("trafficType") if isinstance(usage, dict) else None
    return value if isinstance(value, str) else None


def _expired(body: Any) -> bool:
    err = body.get("error") if isinstance(body, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    return isinstance(details, list) and any(
        isinstance(d, dict) and d.get("@type") == ERROR_INFO and d.get("reason") == "ACCESS_TOKEN_EXPIRED"
        for d in details
    )


class VertexProvider:
    speaks: frozenset[str] = frozenset()

    def __init__(
        self,
        name: str,
        *,
        project: str,
        location: str,
        accounts: list[ServiceAccount],
        base_url: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.name = name
        host = (base_url or default_host(location)).rstrip("/")
        self._base = f"{host}/v1/projects/{project}/locations/{location}/publishers/google/models/"
        self.minter = TokenMinter(accounts, timeout=connect_timeout + 30.0)
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.minter.secrets()

    async def start(self) -> None:
        self._session = google_session(self._headers, self._timeout)
        await self.minter.mint_all(self.name)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.minter.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise BadGateway(f"provider {self.name} is not started")
        return self._session

    # --- helpers -------------------------------------------------------------------------

    async def _bearer(self, credential: str | None) -> tuple[str, ServiceAccount | None]:
        account = self.minter.account_for(credential)
        if account is None:
            assert credential is not None
            return credential, None  # not one of ours: sent as the attempt chose it
        return await self.minter.token(account, self.name), account

    def _error(
        self, resp: aiohttp.ClientResponse, body: bytes, token: str, account: ServiceAccount | None
    ) -> GatewayError:
        parsed = error_json(body)
        if resp.status == 401 and account is not None and _expired(parsed):
            # Our own token lapsed early (revoked, clock skew): not the account's fault.
            account.forget(token)
            return Unavailable(
                f"Upstream '{self.name}' refused an expired access token; the next call "
                "mints a new one."
            )
        return upstream_error(
            resp.status,
            parsed,
            provider=self.name,
            secrets=(*self.secrets, token),
            retry_after=http.retry_after(resp),
        )

    async def _post(
        self, url: str, body: dict[str, Any], call: UpstreamCall, headers: dict[str, str] | None = None
    ) -> tuple[aiohttp.ClientResponse, str, ServiceAccount | None]:
        token, account = await self._bearer(call.credential)
        sent = {"authorization": f"Bearer {token}", **(headers or {})}
        resp = await http.send(self.session, url, self.name, data=orjson.dumps(body), headers=sent)
        return resp, token, account

    async def _unary(
        self, model: str, method: str, body: dict[str, Any], call: UpstreamCall,
        headers: dict[str, str] | None = None,
    ) -> tuple[bytes, dict[str, Any]]:
        resp, token, account = await self._post(f"{self._base}{model}:{method}", body, call, headers)
        data = await http.read(resp, self.name)
        if resp.status != 200:
            raise self._error(resp, data, token, account)
        return data, answer_json(data, self.name)

    # --- Provider --------------------------------------------------------------------------

    async def generate(self, call: UpstreamCall) -> Reply:
        body, headers = wire.generate_body(call.request)
        data, parsed = await self._unary(call.model, "generateContent", body, call, headers)
        return Reply(body=data, data=parsed, usage=usage_of(parsed), service_tier=_traffic_type(parsed))

    async def count_tokens(self, call: UpstreamCall) -> Reply:
        data, parsed = await self._unary(call.model, "countTokens", wire.count_body(call.request), call)
        return Reply(body=data, data=parsed)

    async def embed(self, call: UpstreamCall) -> Reply:
        answers = []
        for body in wire.predict_bodies(call.method, call.request, call.model):
            _, parsed = await self._unary(call.model, "predict", body, call)
            answers.append(parsed)
        vectors, tokens = wire.embeddings(answers, self.name)
        data = wire.embed_answer(call.method, vectors)
        usage = {"promptTokenCount": tokens, "totalTokenCount": tokens} if tokens else None
        return Reply(body=orjson.dumps(data), data=data, usage=usage)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        body, headers = wire.generate_body(call.request)
        url = f"{self._base}{call.model}:streamGenerateContent?alt=sse"
        resp, token, account = await self._post(url, body, call, headers)
        try:
            if resp.status != 200:
                raise self._error(resp, await resp.read(), token, account)
            tier: str | None = None
            try:
                async for payload, data in gemini_events(resp, self.name, (*self.secrets, token)):
                    tier = _traffic_type(data) or tier
                    yield Chunk(
                        body=payload,
                        data=data,
                        usage=usage_of(data),
                        text=candidate_text(data),
                        service_tier=tier,
                    )
            except CredentialRejected:
                if account is not None:
                    account.forget(token)
                raise
        finally:
            resp.close()


def build(p: ProviderSettings, timeout: float, connect_timeout: float) -> tuple[VertexProvider, KeyPool]:
    """A vertex provider and its pool: one key per service account, labelled by its
    ``client_email`` and holding the account's current access token."""
    assert p.vertex is not None
    keys: list[UpstreamKey] = []
    accounts: list[ServiceAccount] = []
    for i, secret in enumerate(p.vertex.credentials):
        key = UpstreamKey(label=f"service-account-{i + 1}", secret=f"{UNMINTED}{i}")
        account = ServiceAccount(secret.reveal(), key)
        key.label = account.email
        keys.append(key)
        accounts.append(account)
    provider = VertexProvider(
        p.name,
        project=p.vertex.project,
        location=p.vertex.location,
        accounts=accounts,
        base_url=p.base_url,
        headers=dict(p.headers),
        timeout=timeout,
        connect_timeout=connect_timeout,
    )
    return provider, KeyPool(keys)

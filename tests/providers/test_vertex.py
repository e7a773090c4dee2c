"""The Vertex AI provider against the fake Vertex server and its fake token endpoint:
service-account tokens minted, checked and refreshed ahead of expiry; the request as
Vertex takes it; errors mapped like Google's; and its config, strictly parsed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.vertex_upstream import FakeVertex

from gemgate.errors import CredentialRejected, InvalidArgument, Unavailable, UpstreamRateLimited
from gemgate.providers import vertex_auth
from gemgate.providers.registry import build_provider
from gemgate.providers.vertex import VertexProvider, default_host
from gemgate.routing.keys import KeyPool
from gemgate.settings import (
    ConfigError,
    ProviderSettings,
    Secret,
    Settings,
    VertexSettings,
    parse,
)
from gemgate.types.canonical import UpstreamCall

MODEL = "gemini-2.5-flash"
HELLO = {"contents": [{"parts": [{"text": "hello there"}]}]}  # no role, as Gemini allows


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeVertex]:
    with FakeVertex() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeVertex) -> None:
    fake.reset()
    fake.token_lifetime = 3600.0


def provider_for(fake: FakeVertex, *accounts: str) -> tuple[VertexProvider, KeyPool]:
    settings = ProviderSettings(
        name="vx", type="vertex", base_url=fake.base_url,
        vertex=VertexSettings(project=fake.project, location=fake.location,
                              credentials=tuple(Secret(a, f"env:SA{i}") for i, a in enumerate(accounts))),
    )
    provider, pool = build_provider(settings, Settings(), MODEL)
    assert isinstance(provider, VertexProvider) and pool is not None
    return provider, pool


def call(request: dict[str, Any] | None = None, method: str = "generateContent") -> UpstreamCall:
    return UpstreamCall(model=MODEL, method=method, request=request or HELLO)  # type: ignore[arg-type]


def run(provider: VertexProvider, work: Any) -> Any:
    async def main() -> Any:
        await provider.start()
        try:
            return await work()
        finally:
            await provider.aclose()

    return asyncio.run(main())


def test_requests_carry_a_minted_token_and_the_roles_vertex_requires(fake: FakeVertex) -> None:
    email = "gw@fake-project.iam.gserviceaccount.com"
    provider, pool = provider_for(fake, fake.new_account(email))

    async def work() -> Any:
        reply = await provider.generate(call({**HELLO, "serviceTier": "flex"}))
        chunks = [c async for c in provider.stream(call(method="streamGenerateContent"))]
        return reply, chunks

    reply, chunks = run(provider, work)
    assert pool.keys[0].label == email  # records name the account, never its token
    sent = fake.calls[0]
    assert sent.token in fake.tokens_of(email)
    assert sent.json["contents"][0]["role"] == "user"
    assert "serviceTier" not in sent.json
    assert sent.headers["x-vertex-ai-llm-shared-request-type"] == "flex"
    assert reply.service_tier == "ON_DEMAND_FLEX"
    assert reply.json()["candidates"][0]["content"]["parts"][0]["text"] == "vertex: hello there"
    assert chunks[-1].service_tier == "ON_DEMAND" and chunks[-1].finishes()


def test_a_token_about_to_expire_is_refreshed_before_the_request(fake: FakeVertex) -> None:
    fake.token_lifetime = 4.0  # refreshed when under half its lifetime is left
    email = "short@fake-project.iam.gserviceaccount.com"
    provider, pool = provider_for(fake, fake.new_account(email))
    clock = [1000.0]
    account = provider.minter.accounts[0]

    async def work() -> list[str | None]:
        account._clock = lambda: clock[0]
        await provider.generate(call())  # minted at start, at the real time
        account._expires_at = clock[0] + 4.0
        account._lifetime = 4.0
        clock[0] += 1.0
        await provider.generate(call())  # 3 s left: still fresh
        clock[0] += 1.5
        await provider.generate(call())  # 1.5 s left: refreshed first
        return [c.token for c in fake.calls]

    tokens = run(provider, work)
    assert fake.mints.count(email) == 2
    assert tokens[0] == tokens[1] != tokens[2]
    assert pool.keys[0].secret == tokens[2]


def test_concurrent_requests_share_one_refresh(fake: FakeVertex) -> None:
    email = "busy@fake-project.iam.gserviceaccount.com"
    provider, _ = provider_for(fake, fake.new_account(email))

    async def work() -> None:
        provider.minter.accounts[0]._expires_at = 0.0
        await asyncio.gather(*(provider.generate(call()) for _ in range(8)))

    run(provider, work)
    assert fake.mints.count(email) == 2  # the one at start, then one for all eight
    assert len({c.token for c in fake.calls}) == 1


def test_an_expired_token_fails_over_and_the_next_call_mints_anew(fake: FakeVertex) -> None:
    email = "lapsed@fake-project.iam.gserviceaccount.com"
    provider, _ = provider_for(fake, fake.new_account(email))

    async def work() -> Exception | None:
        fake.expire_tokens()  # Vertex sees it as expired before we think it is
        try:
            await provider.generate(call())
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
        await provider.generate(call())
        return error

    error = run(provider, work)
    # A channel failure (the attempt loop moves on), not a refused credential (set aside).
    assert type(error) is Unavailable
    assert fake.mints.count(email) == 2
    assert fake.calls[0].token != fake.calls[1].token
    assert fake.calls[0].token not in str(error)


def test_a_refused_service_account_is_a_rejected_credential_that_shows_nothing(fake: FakeVertex) -> None:
    email = "revoked@fake-project.iam.gserviceaccount.com"
    info = fake.new_account(email)
    fake.refuse(email)
    provider, _ = provider_for(fake, info)

    async def work() -> Exception:
        with pytest.raises(CredentialRejected) as caught:
            await provider.generate(call())
        return caught.value

    error = run(provider, work)
    shown = json.dumps(error.google_body()) + str(error)
    assert email in shown and "assertion" not in shown
    assert json.loads(info)["private_key"].splitlines()[1] not in shown
    assert fake.calls == []  # nothing was sent to Vertex without a token


def test_quota_errors_keep_their_retry_delay_and_hide_the_token(fake: FakeVertex) -> None:
    provider, _ = provider_for(fake, fake.new_account("quota@fake-project.iam.gserviceaccount.com"))

    async def work() -> UpstreamRateLimited:
        token = provider.minter.accounts[0].key.secret
        fake.script(status=429, error={"message": f"Quota exceeded for token {token}", "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]})
        with pytest.raises(UpstreamRateLimited) as caught:
            await provider.generate(call())
        assert token not in caught.value.message
        return caught.value

    assert run(provider, work).retry_after == 12


@pytest.mark.parametrize(
    ("patch", "field"),
    [({"store": True}, "store"), ({"cachedContent": "cachedContents/abc"}, "cachedContent"),
     ({"serviceTier": "turbo"}, "serviceTier")],
)
def test_fields_vertex_cannot_take_are_refused_before_sending(
    fake: FakeVertex, patch: dict[str, Any], field: str
) -> None:
    provider, _ = provider_for(fake, fake.new_account("f@fake-project.iam.gserviceaccount.com"))

    async def work() -> InvalidArgument:
        with pytest.raises(InvalidArgument) as caught:
            await provider.generate(call({**HELLO, **patch}))
        return caught.value

    assert run(provider, work).param == field
    assert fake.calls == []


def test_gemini_embedding_models_take_one_text_per_predict_call(fake: FakeVertex) -> None:
    provider, _ = provider_for(fake, fake.new_account("e@fake-project.iam.gserviceaccount.com"))
    texts = ["one two", "three", "four five six"]
    request = {"requests": [{"model": "models/x", "content": {"parts": [{"text": t}]},
                             "outputDimensionality": 4} for t in texts]}

    async def work() -> Any:
        return await provider.embed(UpstreamCall(
            model="gemini-embedding-001", method="batchEmbedContents", request=request))

    reply = run(provider, work)
    assert [len(e["values"]) for e in reply.json()["embeddings"]] == [4, 4, 4]
    assert [c.json["instances"][0]["content"] for c in fake.calls] == texts
    assert reply.usage == {"promptTokenCount": 6, "totalTokenCount": 6}


def test_hosts_follow_the_location() -> None:
    assert default_host("global") == "https://aiplatform.googleapis.com"
    assert default_host("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"
    assert vertex_auth.CLOUD_PLATFORM == "https://www.googleapis.com/auth/cloud-platform"


# --- settings ------------------------------------------------------------------------------


def vertex_config(**keys: Any) -> dict[str, Any]:
    return {"providers": [{"name": "vx", "type": "vertex", **keys}],
            "models": [{"id": "m", "provider": "vx"}]}


@pytest.fixture(scope="module")
def account_json(fake: FakeVertex) -> str:
    return fake.new_account("cfg@fake-project.iam.gserviceaccount.com")


def test_vertex_settings_from_a_file_or_the_environment(tmp_path: Path, account_json: str) -> None:
    path = tmp_path / "sa.json"
    path.write_text(account_json)
    s = parse(vertex_config(project="p", location="global", credentials_file=str(path)), {})
    vertex = s.providers[0].vertex
    assert vertex is not None and (vertex.project, vertex.location) == ("p", "global")
    assert vertex.credentials[0].reveal() == account_json
    assert "PRIVATE KEY" not in repr(s)
    s = parse(vertex_config(project="p", location="us-central1", credentials=["env:A", "env:B"]),
              {"A": account_json, "B": account_json})
    assert len(s.providers[0].vertex.credentials) == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"location": "global", "credentials": "env:SA"}, "project"),
        ({"project": "p", "credentials": "env:SA"}, "location is required"),
        ({"project": "p", "location": "Not A Region", "credentials": "env:SA"}, "is not a location"),
        ({"project": "p", "location": "global"}, "needs service-account credentials"),
        ({"project": "p", "location": "global", "credentials": "env:NOPE"}, "NOPE, which is not set"),
        ({"project": "p", "location": "global", "credentials": "env:SA", "credentials_file": "x"},
         "either credentials_file or credentials"),
        ({"project": "p", "location": "global", "credentials": "{}"}, "environment variable"),
        ({"project": "p", "location": "global", "credentials": "env:BAD"}, "not JSON"),
        ({"project": "p", "location": "global", "credentials": "env:USER"}, '"type" is not'),
        ({"project": "p", "location": "global", "credentials": "env:SA", "api_key": "env:SA"}, "not api_key"),
        ({"project": "p", "location": "global", "credentials": "env:SA", "projct": "p"}, r"unknown key providers\[0\]\.projct"),
        ({"project": "p", "location": "global", "credentials_file": "/no/such/sa.json"}, "cannot be read"),
    ],
)
def test_bad_vertex_settings_are_clear_errors(
    keys: dict[str, Any], message: str, account_json: str
) -> None:
    env = {"SA": account_json, "BAD": "not json", "USER": json.dumps({"type": "authorized_user"})}
    with pytest.raises(ConfigError, match=message) as caught:
        parse(vertex_config(**keys), env)
    assert "PRIVATE KEY" not in str(caught.value)


def test_vertex_keys_are_refused_on_other_providers() -> None:
    raw = {"providers": [{"name": "g", "type": "gemini", "base_url": "http://x", "project": "p"}],
           "models": [{"id": "m", "provider": "g"}]}
    with pytest.raises(ConfigError, match=r"unknown key providers\[0\]\.project"):
        parse(raw, {})

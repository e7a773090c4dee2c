"""The SDK's caches API, unchanged: a cache made upstream on a Google channel (and made
again on another when that channel is down), kept by the gateway for the local model,
billed at the cached rate per use and per token-hour of storage, owned per key."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from google import genai
from google.genai import errors, types
from sqlalchemy import create_engine, update
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import client, eventually, records

from gemgate.store.resource_tables import cached_contents
from gemgate.store.tables import usage_records

BOOK = " ".join(f"word{i}" for i in range(1100))  # over the fake's 1024-token minimum


def _cache(c: genai.Client, model: str = "gemini-2.5-flash", ttl: str = "300s") -> types.CachedContent:
    return c.caches.create(
        model=model,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text=BOOK)])],
            system_instruction="Answer from the book.",
            display_name="the book",
            ttl=ttl,
        ),
    )


def test_a_cache_on_a_google_channel_is_used_and_billed_at_the_cached_rate(
    resource_gw: GatewayProcess, make_key: Callable[..., str], google_a: FakeGemini
) -> None:
    c = client(resource_gw, make_key())
    cache = _cache(c)
    assert cache.name and cache.name.startswith("cachedContents/")
    assert cache.model == "models/gemini-2.5-flash" and cache.display_name == "the book"
    assert cache.usage_metadata is not None and cache.usage_metadata.total_token_count == 1100 + 4
    assert cache.expire_time and cache.create_time
    assert (cache.expire_time - cache.create_time).total_seconds() == pytest.approx(300, abs=2)
    [upstream] = google_a.caches.values()
    assert upstream["model"] == "models/gemini-2.5-flash"
    assert c.caches.get(name=cache.name).display_name == "the book"
    assert cache.name in [x.name for x in c.caches.list()]

    reply = c.models.generate_content(
        model="gemini-2.5-flash", contents="What is in it?",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.cached_content_token_count == 1104
    sent = [r for r in google_a.requests if r.rpc == "generateContent"][-1].json
    assert sent["cachedContent"] == upstream["name"] and "systemInstruction" not in sent
    [row] = records(resource_gw, usage_records.c.method == "generateContent")[-1:]
    assert row["cached_tokens"] == 1104
    prompt, output = row["prompt_tokens"], row["output_text"]
    # $0.30 / 1M fresh input, $0.03 / 1M cached, $2.50 / 1M output (nanos per token: 300, 30, 2500)
    assert row["cost_nanos"] == (prompt - 1104) * 300 + 1104 * 30 + output * 2500

    updated = c.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="600s"))
    assert updated.expire_time is not None and updated.update_time is not None
    assert (updated.expire_time - updated.update_time).total_seconds() == pytest.approx(600, abs=2)
    patched = [r for r in google_a.requests if r.method == "PATCH"]
    assert patched and patched[-1].json["expireTime"]

    c.caches.delete(name=cache.name)
    deleted = time.time()
    with pytest.raises(errors.ClientError) as gone:
        c.caches.get(name=cache.name)
    assert gone.value.code == 404
    prefix = f"cache-{cache.name.split('/')[1]}-"

    def bills() -> list[dict[str, object]]:
        rows = records(resource_gw, usage_records.c.method == "cachedContents.storage")
        return [r for r in rows if str(r["request_id"]).startswith(prefix)]

    [bill] = eventually(bills)
    lived_max = deleted - cache.create_time.timestamp() + 1
    assert 0 < int(bill["cost_nanos"]) <= round(1104 * lived_max * 1000 / 3600) + 1  # $1.00 / 1M tokens / hour
    assert bill["model"] == "gemini-2.5-flash" and bill["key_id"] is not None
    eventually(lambda: not google_a.caches)  # the upstream copy was deleted


def test_a_cache_is_made_again_on_another_channel_when_its_channel_is_down(
    resource_gw: GatewayProcess, make_key: Callable[..., str], google_a: FakeGemini, google_b: FakeGemini
) -> None:
    c = client(resource_gw, make_key(), "v1beta")
    cache = _cache(c, model="dual-flash")
    assert len(google_a.caches) == 1 and not google_b.caches
    google_a.script("gemini-2.5-flash", status=503)
    reply = c.models.generate_content(
        model="dual-flash", contents="Still there?", config=types.GenerateContentConfig(cached_content=cache.name)
    )
    assert reply.text
    [copy_b] = google_b.caches.values()
    sent = [r for r in google_b.requests if r.rpc == "generateContent"][-1].json
    assert sent["cachedContent"] == copy_b["name"]
    assert reply.usage_metadata is not None and reply.usage_metadata.cached_content_token_count == 1104


def test_a_cache_for_the_local_model_is_kept_by_the_gateway(
    resource_gw: GatewayProcess, make_key: Callable[..., str]
) -> None:
    c = client(resource_gw, make_key())
    cache = c.caches.create(
        model="gemma-3-270m",
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text="The secret colour is teal.")])],
            system_instruction="Answer in one word.", ttl="120s",
        ),
    )
    assert cache.usage_metadata is not None and (cache.usage_metadata.total_token_count or 0) > 5
    reply = c.models.generate_content(
        model="gemma-3-270m", contents="What is the secret colour?",
        config=types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=8),
    )
    assert reply.text is not None
    assert reply.usage_metadata is not None
    assert (reply.usage_metadata.prompt_token_count or 0) > (cache.usage_metadata.total_token_count or 0)
    count = c.models.count_tokens(model="gemma-3-270m", contents="hi", config=types.CountTokensConfig())
    assert count.total_tokens


def test_another_key_cannot_use_or_see_a_cache(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    owner = client(resource_gw, make_key())
    cache = _cache(owner)
    other = client(resource_gw, make_key())
    assert cache.name is not None
    for call in (lambda: other.caches.get(name=cache.name), lambda: other.caches.delete(name=cache.name),
                 lambda: other.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="60s"))):
        with pytest.raises(errors.ClientError) as caught:
            call()
        assert caught.value.code == 404
    assert list(other.caches.list()) == []
    with pytest.raises(errors.ClientError) as denied:
        other.models.generate_content(
            model="gemini-2.5-flash", contents="x", config=types.GenerateContentConfig(cached_content=cache.name)
        )
    assert denied.value.code == 403
    assert owner.caches.get(name=cache.name).name == cache.name


def test_bad_cache_requests_are_refused(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    c = client(resource_gw, make_key())
    cache = _cache(c)
    cases = [
        lambda: c.models.generate_content(model="gemini-2.5-flash", contents="x", config=types.GenerateContentConfig(
            cached_content=cache.name, system_instruction="no")),
        lambda: c.models.generate_content(model="gemini-2.5-pro", contents="x", config=types.GenerateContentConfig(
            cached_content=cache.name)),
        lambda: c.caches.create(model="gemini-2.5-flash", config=types.CreateCachedContentConfig(
            contents=["too small"])),
        lambda: c.caches.create(model="gemini-2.5-flash", config=types.CreateCachedContentConfig(
            contents=[BOOK], ttl="soon")),
    ]
    for case in cases:
        with pytest.raises(errors.ClientError) as caught:
            case()
        assert caught.value.code in (400, 404), caught.value


def test_storage_is_billed_at_least_daily(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    c = client(resource_gw, make_key())
    cache = _cache(c, ttl="172800s")
    assert cache.name is not None
    cache_id = cache.name.split("/")[1]
    engine = create_engine(f"sqlite:///{resource_gw.workdir}/gemgate.db")
    start = datetime.now(UTC) - timedelta(hours=25)
    with engine.begin() as conn:
        conn.execute(update(cached_contents).where(cached_contents.c.id == cache_id).values(billed_until=start))
    engine.dispose()
    rid = f"cache-{cache_id}-{int(start.timestamp())}"
    [bill] = eventually(lambda: records(resource_gw, usage_records.c.request_id == rid))
    assert bill["cost_nanos"] == 1104 * 24 * 1000  # 1104 tokens x 24 h x $1.00 / 1M / h
    assert c.caches.get(name=cache.name).name == cache.name  # still live


def test_an_expired_cache_is_billed_to_its_end_and_purged(
    resource_gw: GatewayProcess, make_key: Callable[..., str], google_a: FakeGemini
) -> None:
    c = client(resource_gw, make_key())
    cache = _cache(c, ttl="3600s")
    assert cache.name is not None and cache.create_time is not None
    cache_id = cache.name.split("/")[1]
    engine = create_engine(f"sqlite:///{resource_gw.workdir}/gemgate.db")
    start = datetime.now(UTC) - timedelta(seconds=200)
    with engine.begin() as conn:
        conn.execute(update(cached_contents).where(cached_contents.c.id == cache_id).values(
            billed_until=start, expires_at=start + timedelta(seconds=90)))
    engine.dispose()
    rid = f"cache-{cache_id}-{int(start.timestamp())}"
    [bill] = eventually(lambda: records(resource_gw, usage_records.c.request_id == rid))
    assert bill["cost_nanos"] == round(1104 * 90 * 1000 / 3600)  # 90 s of 1104 tokens at $1.00 / 1M / h
    with pytest.raises(errors.ClientError):
        c.caches.get(name=cache.name)
    eventually(lambda: not google_a.caches)

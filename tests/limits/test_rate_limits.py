"""Per-key requests-per-minute limits: GCRA in one process, in Redis, and through the doors."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx
import openai
import pytest
import redis
from tests.billing.gateways import MODEL, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.limits.records import key_record

from gemgate.errors import ResourceExhausted
from gemgate.limits.memory import MemoryRateLimiter
from gemgate.limits.redis import RedisRateLimiter
from gemgate.store.keys import KeyRecord

REDIS_URL = "redis://127.0.0.1:6379/0"


def key(rpm: int | None, key_id: int = 1) -> KeyRecord:
    return key_record(key_id, rpm=rpm)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gcra_allows_a_minutes_worth_then_one_per_interval() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    k = key(rpm=6)  # one every 10 s, up to 6 at once

    async def scenario() -> None:
        for _ in range(6):
            await limiter.check(k)
        with pytest.raises(ResourceExhausted) as info:
            await limiter.check(k)
        assert info.value.retry_after == 10
        assert info.value.details[0]["violations"][0]["subject"] == "rpm:key-1"
        clock.now += 9.9
        with pytest.raises(ResourceExhausted):
            await limiter.check(k)
        clock.now += 0.1
        await limiter.check(k)  # one more after the interval
        with pytest.raises(ResourceExhausted):
            await limiter.check(k)
        clock.now += 60
        for _ in range(6):  # a quiet minute restores the whole allowance
            await limiter.check(k)
        await limiter.check(key(rpm=None))  # no limit, no state
        await limiter.check(key(rpm=1, key_id=2))  # keys are independent

    asyncio.run(scenario())


@pytest.mark.redis
def test_redis_limit_is_shared_by_replicas() -> None:
    prefix = f"gemgate-test-{secrets.token_hex(4)}"

    async def scenario() -> tuple[int, int]:
        replicas = [RedisRateLimiter(REDIS_URL, prefix=prefix) for _ in range(2)]
        k = key(rpm=10, key_id=7)
        results = await asyncio.gather(
            *(replicas[i % 2].check(k) for i in range(30)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, ResourceExhausted)]
        for r in replicas:
            await r.aclose()
        return len(results) - len(refused), len(refused)

    try:
        admitted, refused = asyncio.run(scenario())
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for name in client.scan_iter(match=f"{prefix}:*"):
            client.delete(name)
    assert admitted == 10 and refused == 20


def test_rate_limit_through_both_doors(tmp_path: Path, fake_google: FakeGemini) -> None:
    gw = start(tmp_path / "gw", fake_google)
    try:
        limited = gw.create_key("limited", "--rpm", "2")
        url = f"{gw.base_url}/v1beta/models/{MODEL}:generateContent"
        body = b'{"contents":[{"parts":[{"text":"hi"}]}]}'
        codes = [httpx.post(url, content=body, headers={"x-goog-api-key": limited}).status_code for _ in range(2)]
        assert codes == [200, 200]
        refused = httpx.post(url, content=body, headers={"x-goog-api-key": limited})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        err = refused.json()["error"]
        assert err["status"] == "RESOURCE_EXHAUSTED" and "2 requests per minute" in err["message"]
        assert any(d.get("violations", [{}])[0].get("subject") == "rpm:limited" for d in err["details"])
        client = openai.OpenAI(api_key=limited, base_url=gw.base_url + "/v1", max_retries=0)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert info.value.code == "rate_limit_exceeded"
        # Lifting the limit applies to the running gateway.
        assert "no rate limit" in gw.cli("keys", "set-rpm", "limited", "0").stdout
        for _ in range(50):
            resp = httpx.post(url, content=body, headers={"x-goog-api-key": limited})
            if resp.status_code == 200:
                break
            time.sleep(0.05)
        assert resp.status_code == 200
    finally:
        gw.stop()

"""Redis losing its data (a restart without persistence, an eviction, a failover) does not
give keys their budgets back: a lost account is re-seeded from the database's ledger, not
from the key records the gateway read at its start. Real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import func, select
from tests.billing.gateways import MODEL, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess
from tests.limits.records import key_record

from gemgate.errors import ResourceExhausted, Unavailable
from gemgate.limits.redis import RedisBudgets
from gemgate.store import keys as key_store
from gemgate.store import make_engine, migrate
from gemgate.store.tables import api_keys, usage_records

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
PATH = f"/v1beta/models/{MODEL}:generateContent"


@pytest.fixture
def database() -> Iterator[str]:
    name = f"gemgate_test_{secrets.token_hex(5)}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"gemgate-test-{secrets.token_hex(5)}"
    yield prefix
    forget(prefix)


def forget(prefix: str) -> int:
    """What a Redis restart without persistence does to this prefix: every key is gone."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        names = list(client.scan_iter(match=f"{prefix}:*", count=500))
        return int(client.delete(*names)) if names else 0
    finally:
        client.close()


def ledger_sum(db_url: str, key_name: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.coalesce(func.sum(usage_records.c.cost_nanos), 0)).where(
                        usage_records.c.key_name == key_name
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def expensive_reply() -> dict[str, Any]:
    # 1,000 prompt and 10,000 output tokens: 0.0003 + 0.025 = 0.0253 USD.
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 10000, "totalTokenCount": 11000},
        "modelVersion": MODEL,
    }


def ask(gw: GatewayProcess, key: str) -> httpx.Response:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "generationConfig": {"maxOutputTokens": 10000},
    }
    return httpx.post(gw.base_url + PATH, json=body, headers={"x-goog-api-key": key}, timeout=30)


def test_a_gateway_whose_redis_lost_its_data_still_refuses_a_spent_key(
    fake_google: FakeGemini, tmp_path: Path, database: str, prefix: str
) -> None:
    gw = start(tmp_path / "gw", fake_google, database_url=database, redis_url=REDIS_URL, redis_prefix=prefix)
    try:
        # The worst case of one request (10,000 output tokens: 0.025 USD) fits the budget
        # once; after its actual cost (0.0253 USD) it no longer does.
        key = gw.create_key("redis-loss", "--budget-usd", "0.04")
        fake_google.script(MODEL, reply=expensive_reply())
        assert ask(gw, key).status_code == 200
        refused = ask(gw, key)
        assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED", refused.text

        assert forget(prefix) > 0
        fake_google.clear()
        after = ask(gw, key)
        assert after.json().get("error", {}).get("status") == "RESOURCE_EXHAUSTED", after.text
        assert not [r for r in fake_google.requests if r.rpc], "the upstream must not be called"
        # The re-seeded account holds exactly what the ledger committed.
        spent = ledger_sum(database, "redis-loss")
        assert spent == 25_300_000
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            ids = client.smembers(f"{prefix}:budget:ids")
            assert len(ids) == 1
            assert int(client.hget(f"{prefix}:budget:{ids.pop()}", "spent") or 0) == spent
        finally:
            client.close()
    finally:
        gw.stop()


def test_a_lost_account_is_seeded_from_the_ledger_not_the_stale_record(
    database: str, prefix: str
) -> None:
    engine = make_engine(database)
    migrate(engine)
    _plain, record = key_store.create_key(engine, "k", budget_nanos=100_000)

    async def scenario() -> None:
        budgets = RedisBudgets(REDIS_URL, prefix=prefix, engine=engine)
        await budgets.start()
        try:
            await budgets.load({"h": record}, await budgets.begin_load())
            r = await budgets.reserve(record, 60_000)
            # The ledger commits the request's cost (as LedgerWriter does, in one
            # transaction with its record), then the reservation settles.
            with engine.begin() as conn:
                conn.execute(
                    api_keys.update()
                    .where(api_keys.c.id == record.id)
                    .values(spent_nanos=api_keys.c.spent_nanos + 60_000)
                )
            await budgets.settle(r, 60_000)
            assert forget(prefix) > 0
            # ``record`` is what the gateway read at its start: spent 0.
            with pytest.raises(ResourceExhausted):
                await budgets.reserve(record, 60_000)
            assert await budgets.state(record.id) == {"budget": 100_000, "spent": 60_000, "reserved": 0}
            held = await budgets.reserve(record, 40_000)
            await budgets.settle(held, 0)
            # Many requests finding the account gone at once seed it once, and together
            # never reserve more than the balance.
            forget(prefix)

            async def attempt() -> int:
                try:
                    return (await budgets.reserve(record, 7_000)).nanos
                except ResourceExhausted:
                    return 0

            reserved = await asyncio.gather(*(attempt() for _ in range(50)))
            assert sum(reserved) == 5 * 7_000
        finally:
            await budgets.delete_all()
            await budgets.aclose()

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()


def test_a_lost_account_with_the_database_down_fails_closed(prefix: str) -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")

    async def scenario() -> None:
        budgets = RedisBudgets(REDIS_URL, prefix=prefix, engine=engine)
        await budgets.start()
        try:
            with pytest.raises(Unavailable):
                await budgets.reserve(key_record(5, budget=100_000), 1)
            # A key without a budget needs no ledger.
            await budgets.reserve(key_record(6, budget=None), 10**9)
        finally:
            await budgets.aclose()

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()

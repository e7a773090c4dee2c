"""Budgets shared in Redis by several gateway replicas (a real Redis on 127.0.0.1:6379).

Each test works under its own key prefix and removes only that prefix's keys."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from tests.limits.records import key_record

from gemgate.errors import ResourceExhausted
from gemgate.limits.memory import Reservation
from gemgate.limits.redis import RedisBudgets
from gemgate.store.keys import KeyRecord

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def key(key_id: int = 1, budget: int | None = 1_000_000, spent: int = 0) -> KeyRecord:
    return key_record(key_id, budget=budget, spent=spent)


def run(scenario: Callable[..., Coroutine[Any, Any, None]], n: int = 2, **options: Any) -> None:
    """Run ``scenario(*replicas)`` with ``n`` RedisBudgets sharing one fresh prefix, as ``n``
    gateway replicas would; the prefix's keys are removed afterwards."""

    async def main() -> None:
        prefix = f"gemgate-test-{secrets.token_hex(6)}"
        fleet = [RedisBudgets(REDIS_URL, prefix=prefix, **options) for _ in range(n)]
        try:
            for budgets in fleet:
                await budgets.start()
            await scenario(*fleet)
        finally:
            await fleet[0].delete_all()
            for budgets in fleet:
                await budgets.aclose()

    asyncio.run(main())


def test_concurrent_reserves_across_replicas_never_exceed_the_budget() -> None:
    async def scenario(a: RedisBudgets, b: RedisBudgets) -> None:
        k = key(budget=1_000_000)
        await a.load({"h": k}, await a.begin_load())
        await b.load({"h": k}, await b.begin_load())

        async def attempt(budgets: RedisBudgets) -> Reservation | None:
            try:
                return await budgets.reserve(k, 7_000)
            except ResourceExhausted:
                return None

        results = await asyncio.gather(*(attempt(a if i % 2 else b) for i in range(1000)))
        held = [r for r in results if r is not None]
        assert len(held) == 1_000_000 // 7_000  # exactly as many as fit, from both replicas
        state = await a.state(k.id)
        assert state == {"budget": 1_000_000, "spent": 0, "reserved": len(held) * 7_000}

        # Settling moves each reservation to its actual cost.
        await asyncio.gather(*((a if i % 2 else b).settle(r, 5_000) for i, r in enumerate(held)))
        assert await b.state(k.id) == {
            "budget": 1_000_000,
            "spent": len(held) * 5_000,
            "reserved": 0,
        }
        assert await a.balance(k.id) == 1_000_000 - len(held) * 5_000

    run(scenario, 2)


def test_mixed_load_from_replicas_never_overspends() -> None:
    async def scenario(*fleet: RedisBudgets) -> None:
        k = key(budget=2_000_000, spent=150_000)
        for budgets in fleet:
            await budgets.load({"h": k}, await budgets.begin_load())
        rng = random.Random(7)
        spent = 0

        async def request(budgets: RedisBudgets) -> bool:
            nonlocal spent
            worst = rng.randrange(10_000, 60_000)
            try:
                reservation = await budgets.reserve(k, worst)
            except ResourceExhausted:
                return False
            await asyncio.sleep(rng.random() / 100)
            actual = rng.randrange(worst // 2, worst + 1)
            spent += actual
            await budgets.settle(reservation, actual)
            return True

        # Waves of concurrent requests, spread over the replicas, until none fits.
        for _ in range(50):
            admitted = await asyncio.gather(*(request(fleet[i % 3]) for i in range(200)))
            if not any(admitted):
                break
        state = await fleet[0].state(k.id)
        assert state["reserved"] == 0
        assert state["spent"] == 150_000 + spent
        assert 150_000 + spent <= 2_000_000
        assert 2_000_000 - state["spent"] < 60_000  # the budget was used up, not left unused

    run(scenario, 3)


def test_refusal_names_the_budget() -> None:
    async def scenario(a: RedisBudgets) -> None:
        k = key(budget=10_000, spent=4_000)
        await a.load({"h": k}, await a.begin_load())
        with pytest.raises(ResourceExhausted) as caught:
            await a.reserve(k, 6_001)
        body = caught.value.google_body()["error"]
        assert body["code"] == 402 and body["status"] == "RESOURCE_EXHAUSTED"
        quota = body["details"][1]
        assert quota["@type"] == "type.googleapis.com/google.rpc.QuotaFailure"
        assert quota["violations"][0]["subject"] == "budget:key-1"
        assert "0.000006000 USD remains" in body["message"]
        await a.reserve(k, 6_000)

    run(scenario, 1)


def test_reload_keeps_other_replicas_reservations() -> None:
    async def scenario(a: RedisBudgets, b: RedisBudgets) -> None:
        k = key(budget=100_000)
        await a.load({"h": k}, await a.begin_load())
        r = await a.reserve(k, 80_000)
        # Replica b reloads after a top-up: the budget changes, a's reservation stays.
        topped = key(budget=150_000)
        await b.load({"h": topped}, await b.begin_load())
        assert await b.state(k.id) == {"budget": 150_000, "spent": 0, "reserved": 80_000}
        with pytest.raises(ResourceExhausted):
            await b.reserve(topped, 70_001)
        await a.settle(r, 30_000)
        assert await b.balance(k.id) == 120_000

    run(scenario, 2)


def test_reload_counts_what_settled_during_the_database_read() -> None:
    async def scenario(a: RedisBudgets, b: RedisBudgets) -> None:
        k = key(budget=100_000, spent=10_000)
        await a.load({"h": k}, await a.begin_load())
        r1 = await a.reserve(k, 20_000)
        r2 = await a.reserve(k, 20_000)
        marks = await b.begin_load()
        # While b reads the keys, a's request commits its record and settles: b's read
        # may not have seen the commit (spent still 10_000 in what b read).
        await a.settle(r1, 15_000)
        await b.load({"h": key(budget=100_000, spent=10_000)}, marks)
        assert await a.state(k.id) == {"budget": 100_000, "spent": 25_000, "reserved": 20_000}
        # A read that did see the commit is never undercounted either (at worst counted
        # twice until the next reload, which corrects it).
        marks = await b.begin_load()
        await b.load({"h": key(budget=100_000, spent=25_000)}, marks)
        assert (await a.state(k.id))["spent"] == 25_000
        await a.settle(r2, 0)
        assert await a.balance(k.id) == 75_000

    run(scenario, 2)


def test_lapsed_reservations_are_released() -> None:
    async def scenario(a: RedisBudgets) -> None:
        k = key(budget=50_000)
        await a.load({"h": k}, await a.begin_load())
        lost = await a.reserve(k, 50_000)  # its replica "dies" and never settles
        with pytest.raises(ResourceExhausted):
            await a.reserve(k, 1)
        await asyncio.sleep(0.1)
        fresh = await a.reserve(k, 50_000)
        assert (await a.state(k.id))["reserved"] == 50_000
        await a.settle(lost, 0)  # a late settle of a lapsed reservation changes nothing
        assert (await a.state(k.id))["reserved"] == 50_000
        await a.settle(fresh, 50_000)
        assert await a.state(k.id) == {"budget": 50_000, "spent": 50_000, "reserved": 0}

    run(scenario, 1, lease_s=0.05)


def test_unloaded_key_is_seeded_from_its_record() -> None:
    async def scenario(a: RedisBudgets) -> None:
        k = key(key_id=9, budget=30_000, spent=20_000)
        r = await a.reserve(k, 10_000)  # never loaded: seeded from the key record
        with pytest.raises(ResourceExhausted):
            await a.reserve(k, 1)
        await a.settle(r, 10_000)
        assert await a.state(9) == {"budget": 30_000, "spent": 30_000, "reserved": 0}
        unlimited = key(key_id=10, budget=None)
        await a.reserve(unlimited, 10**12)
        assert await a.balance(10) is None

    run(scenario, 1)

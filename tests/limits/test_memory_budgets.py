"""In-process budgets: atomic reservations, and reloads that never lose a settled cost."""

from __future__ import annotations

import asyncio

import pytest
from tests.limits.records import key_record

from gemgate.errors import ResourceExhausted
from gemgate.limits.memory import MemoryBudgets
from gemgate.store.keys import KeyRecord


def key(budget: int | None = 100_000, spent: int = 0) -> KeyRecord:
    return key_record(1, budget=budget, spent=spent)


def test_concurrent_reserves_fit_the_balance() -> None:
    async def scenario() -> None:
        budgets = MemoryBudgets()
        await budgets.load({"h": key(100_000, 10_000)}, await budgets.begin_load())

        async def attempt() -> bool:
            try:
                await budgets.reserve(key(), 7_000)
                return True
            except ResourceExhausted:
                return False

        results = await asyncio.gather(*(attempt() for _ in range(100)))
        assert sum(results) == 90_000 // 7_000
        assert budgets.balance(1) == 90_000 - sum(results) * 7_000

    asyncio.run(scenario())


@pytest.mark.parametrize("read_saw_commit", [False, True])
def test_reload_during_a_settle_never_undercounts(read_saw_commit: bool) -> None:
    async def scenario() -> None:
        budgets = MemoryBudgets()
        await budgets.load({"h": key(100_000, 0)}, await budgets.begin_load())
        r = await budgets.reserve(key(), 50_000)
        marks = await budgets.begin_load()
        # The database is read in a thread while this request commits and settles.
        await budgets.settle(r, 30_000)
        await budgets.load({"h": key(100_000, 30_000 if read_saw_commit else 0)}, marks)
        balance = budgets.balance(1)
        assert balance is not None and balance <= 70_000  # at worst counted twice
        # The next reload, with nothing in flight, is exact again.
        await budgets.load({"h": key(100_000, 30_000)}, await budgets.begin_load())
        assert budgets.balance(1) == 70_000

    asyncio.run(scenario())


def test_top_up_keeps_reservations() -> None:
    async def scenario() -> None:
        budgets = MemoryBudgets()
        await budgets.load({"h": key(10_000)}, await budgets.begin_load())
        r = await budgets.reserve(key(10_000), 8_000)
        with pytest.raises(ResourceExhausted) as caught:
            await budgets.reserve(key(10_000), 8_000)
        subject = caught.value.google_body()["error"]["details"][1]["violations"][0]["subject"]
        assert subject == "budget:key-1"
        await budgets.load({"h": key(20_000)}, await budgets.begin_load())
        await budgets.reserve(key(20_000), 8_000)
        await budgets.settle(r, 1_000)
        assert budgets.balance(1) == 20_000 - 1_000 - 8_000

    asyncio.run(scenario())

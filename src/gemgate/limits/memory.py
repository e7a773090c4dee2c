"""Budget reservations for one gateway process.

balance = budget - spent - reserved. A request reserves its worst-case cost before the
upstream call; when its record is committed the reservation is replaced by the actual
cost. All operations run on the event loop thread, so each is atomic: however many
requests arrive together, the sum of reservations never exceeds the balance, and spent
never exceeds the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemgate.billing import format_usd
from gemgate.errors import ResourceExhausted
from gemgate.store.keys import KeyRecord


@dataclass(slots=True)
class Reservation:
    key_id: int
    nanos: int


@dataclass(slots=True)
class _Account:
    budget: int | None
    spent: int
    reserved: int = 0


class MemoryBudgets:
    def __init__(self) -> None:
        self._accounts: dict[int, _Account] = {}

    def load(self, keys: dict[str, KeyRecord]) -> None:
        """Take budgets and spent amounts from freshly loaded key records."""
        fresh: dict[int, _Account] = {}
        for k in keys.values():
            old = self._accounts.get(k.id)
            fresh[k.id] = _Account(
                budget=k.budget_nanos, spent=k.spent_nanos, reserved=old.reserved if old else 0
            )
        self._accounts = fresh

    def balance(self, key_id: int) -> int | None:
        acct = self._accounts.get(key_id)
        if acct is None or acct.budget is None:
            return None
        return acct.budget - acct.spent - acct.reserved

    async def reserve(self, key: KeyRecord, nanos: int) -> Reservation:
        acct = self._accounts.get(key.id)
        if acct is None:
            acct = self._accounts[key.id] = _Account(budget=key.budget_nanos, spent=key.spent_nanos)
        if acct.budget is not None:
            available = acct.budget - acct.spent - acct.reserved
            if nanos > available:
                raise budget_exhausted(key.name, nanos, max(available, 0))
        acct.reserved += nanos
        return Reservation(key.id, nanos)

    async def settle(self, reservation: Reservation, actual_nanos: int) -> None:
        """The request's record is committed: release its reservation, add its cost."""
        acct = self._accounts.get(reservation.key_id)
        if acct is None:
            return
        acct.reserved -= reservation.nanos
        acct.spent += actual_nanos

    async def aclose(self) -> None:
        return None


def budget_exhausted(key_name: str, needed: int, available: int) -> ResourceExhausted:
    return ResourceExhausted.quota(
        f"budget:{key_name}",
        f"The budget of API key '{key_name}' cannot cover this request: it may cost up to "
        f"{format_usd(needed)} USD and {format_usd(available)} USD remains.",
        reason="BUDGET_EXHAUSTED",
    )

"""Budget reservations for one gateway process.

balance = budget - spent - reserved. A request reserves its worst-case cost before the
upstream call; when its record is committed the reservation is replaced by the actual
cost. All operations run on the event loop thread, so each is atomic: however many
requests arrive together, the sum of reservations never exceeds the balance, and spent
never exceeds the budget.

Reloading keys from the database (after a top-up, say) takes spent from the database,
which is authoritative for committed records. The database is read in a worker thread
while requests keep settling, so a reload is two steps: :meth:`begin_load` notes how much
each key had settled before the read, and :meth:`load` adds what settled since then to the
spent amount read. A record committed before the read but settled after the mark is then
counted twice until the next reload: conservative, never an overspend.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gemgate.billing import format_usd
from gemgate.errors import BudgetExhausted, ResourceExhausted
from gemgate.store.keys import KeyRecord

# What begin_load returns and load takes: each key's settled total before the database read.
Marks = Mapping[int, int]


@dataclass(slots=True)
class Reservation:
    key_id: int
    nanos: int
    id: str = ""  # names the reservation where the store keeps each one (Redis)


@dataclass(slots=True)
class _Account:
    budget: int | None
    spent: int
    reserved: int = 0
    settled: int = 0  # every cost settled in this process, ever (for reload marks)


class MemoryBudgets:
    def __init__(self) -> None:
        self._accounts: dict[int, _Account] = {}

    async def start(self) -> None:
        return None

    async def begin_load(self) -> Marks:
        """Call before reading the keys from the database; pass the result to :meth:`load`."""
        return {key_id: acct.settled for key_id, acct in self._accounts.items()}

    async def load(self, keys: Mapping[str, KeyRecord], marks: Marks | None = None) -> None:
        """Take budgets and spent amounts from freshly loaded key records.

        With ``marks`` from :meth:`begin_load`, costs settled after the mark (which the
        database read may have missed) are added to the spent amount read.
        """
        fresh: dict[int, _Account] = {}
        for k in keys.values():
            old = self._accounts.get(k.id)
            spent = k.spent_nanos
            if old is not None and marks is not None:
                spent += max(old.settled - marks.get(k.id, 0), 0)
            fresh[k.id] = _Account(
                budget=k.budget_nanos,
                spent=spent,
                reserved=old.reserved if old else 0,
                settled=old.settled if old else 0,
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
        acct.reserved = max(acct.reserved - reservation.nanos, 0)
        acct.spent += actual_nanos
        acct.settled += actual_nanos

    async def aclose(self) -> None:
        return None


def budget_exhausted(key_name: str, needed: int, available: int) -> ResourceExhausted:
    """402 RESOURCE_EXHAUSTED: retrying cannot help until the key is topped up."""
    return BudgetExhausted.quota(
        f"budget:{key_name}",
        f"The budget of API key '{key_name}' cannot cover this request: it may cost up to "
        f"{format_usd(needed)} USD and {format_usd(available)} USD remains.",
        reason="BUDGET_EXHAUSTED",
    )


class MemoryRateLimiter:
    """Per-key requests-per-minute limits for one gateway process (GCRA).

    A key limited to R requests per minute may send up to R at once, then one every 60/R
    seconds: no window boundary lets it through twice as fast. Refusals say when to retry.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[int, float] = {}  # key id -> theoretical arrival time

    async def check(self, key: KeyRecord) -> None:
        if not key.rpm:
            return
        now = self._clock()
        interval = 60.0 / key.rpm
        tolerance = 60.0 - interval
        tat = max(self._tat.get(key.id, now), now)
        if tat - tolerance > now:
            raise rate_limited(key.name, key.rpm, tat - tolerance - now)
        self._tat[key.id] = tat + interval

    async def aclose(self) -> None:
        return None


def rate_limited(key_name: str, rpm: int, wait_s: float) -> ResourceExhausted:
    retry = max(1, math.ceil(wait_s))
    return ResourceExhausted.quota(
        f"rpm:{key_name}",
        f"API key '{key_name}' is limited to {rpm} requests per minute; retry in {retry} s.",
        reason="RATE_LIMIT_EXCEEDED",
        retry_after=retry,
    )

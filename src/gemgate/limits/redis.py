"""Budget reservations shared by every gateway replica, in Redis.

The same interface and rules as :mod:`gemgate.limits.memory` (balance = budget - spent -
reserved; a request reserves its worst case, settles to its actual cost), but the balance
lives in Redis so that replicas draw on one budget. Each check-and-reserve and each settle
is one Lua script, atomic in Redis, so however many replicas reserve at once the
reservations never exceed the balance.

Per key (``{prefix}:budget:{key_id}``) a hash holds ``budget`` (nanos, or ``none``),
``spent``, ``reserved`` and ``settled`` (every cost ever settled, for reload marks). Each
reservation is also kept by id, with a lease: a replica that dies between reserve and
settle cannot hold its reservations forever; they lapse after ``lease_s``.

An account Redis no longer holds (a restart without persistence, an eviction, a failover
to a replica that missed writes) is never re-created from the key record the gateway read
at its start, which may be long stale: the reservation finds no account, the spent amount
is read afresh from the database (the key's committed costs, which the ledger adds in the
same transaction as each usage record), and the account is seeded from it before the
reservation is tried again. Costs settled while that read ran are added on top, as for a
reload. Reservations that were in flight when the data was lost are gone with it; their
costs still arrive when they settle.

Reloading keys takes budget and spent from the database, which is authoritative for
committed records, without touching ``reserved`` (other replicas' requests in flight).
Spent as read from the database misses records committed after the read began, so the
reload adds whatever was settled since :meth:`RedisBudgets.begin_load` marked each key:
a record committed before the read and settled after the mark is counted twice until the
next reload (conservative); none is ever missed.

Amounts are compared in Redis' Lua numbers (doubles): exact up to 2**53 nanos (about
9 million USD) per key.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import Engine

from gemgate.errors import Unavailable
from gemgate.limits.memory import Marks, Reservation, budget_exhausted, rate_limited
from gemgate.store import keys as key_store
from gemgate.store.keys import KeyRecord

log = logging.getLogger("gemgate.budgets")

DEFAULT_LEASE_S = 3600.0
SETTLE_RETRY_DELAYS = (0.05, 0.2, 0.5)

# KEYS: account, reservations, expiries, registry
# ARGV: nanos, budget to seed ("none" or nanos), spent to seed, reservation id, lease ms, key id,
#       "1" to seed a missing account from these arguments, "0" to answer {-1, 0} instead
_RESERVE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local acct, res, exp = KEYS[1], KEYS[2], KEYS[3]
local nanos = tonumber(ARGV[1])
if redis.call('HEXISTS', acct, 'budget') == 0 then
  if ARGV[7] == '0' then return {-1, 0} end
  local spent = tonumber(redis.call('HGET', acct, 'spent') or '0')
  redis.call('HSET', acct, 'budget', ARGV[2])
  if tonumber(ARGV[3]) > spent then redis.call('HSET', acct, 'spent', ARGV[3]) end
  redis.call('SADD', KEYS[4], ARGV[6])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(lapsed) do
  local amount = redis.call('HGET', res, id)
  if amount then
    redis.call('HINCRBY', acct, 'reserved', -tonumber(amount))
    redis.call('HDEL', res, id)
  end
  redis.call('ZREM', exp, id)
end
local budget = redis.call('HGET', acct, 'budget')
if budget ~= 'none' then
  local spent = tonumber(redis.call('HGET', acct, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', acct, 'reserved') or '0')
  local available = tonumber(budget) - spent - reserved
  if nanos > available then return {0, available} end
end
redis.call('HINCRBY', acct, 'reserved', ARGV[1])
redis.call('HSET', res, ARGV[4], ARGV[1])
redis.call('ZADD', exp, now + tonumber(ARGV[5]), ARGV[4])
return {1, 0}
"""

# KEYS: account, reservations, expiries, registry
# ARGV: reservation id, actual nanos, key id
_SETTLE = """
local amount = redis.call('HGET', KEYS[2], ARGV[1])
if amount then
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(amount))
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if tonumber(ARGV[2]) > 0 then
  redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'settled', ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[3])
end
return 1
"""

# KEYS: registry, then one account per key
# ARGV: per key four values: key id, budget ("none" or nanos), spent in the database,
#       settled mark (-1: no mark, take the database's spent as it is)
_LOAD = """
for i = 2, #KEYS do
  local j = (i - 2) * 4
  local acct = KEYS[i]
  local mark = tonumber(ARGV[j + 4])
  local extra = 0
  if mark >= 0 then
    local settled = tonumber(redis.call('HGET', acct, 'settled') or '0')
    extra = settled - mark
    if extra < 0 then extra = settled end
  end
  redis.call('HSET', acct, 'budget', ARGV[j + 2], 'spent', ARGV[j + 3])
  if extra > 0 then redis.call('HINCRBY', acct, 'spent', extra) end
  redis.call('SADD', KEYS[1], ARGV[j + 1])
end
return #KEYS - 1
"""


# KEYS: account, registry
# ARGV: budget ("none" or nanos), spent in the database, settled mark, key id
_SEED = """
if redis.call('HEXISTS', KEYS[1], 'budget') == 1 then return 0 end
local settled = tonumber(redis.call('HGET', KEYS[1], 'settled') or '0')
local extra = settled - tonumber(ARGV[3])
if extra < 0 then extra = settled end
redis.call('HSET', KEYS[1], 'budget', ARGV[1], 'spent', ARGV[2])
if extra > 0 then redis.call('HINCRBY', KEYS[1], 'spent', extra) end
redis.call('SADD', KEYS[2], ARGV[4])
return 1
"""


class RedisBudgets:
    """``engine``: the database whose ledger re-seeds an account Redis lost. Without one,
    a missing account is seeded from the key record given to :meth:`reserve`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gemgate",
        lease_s: float = DEFAULT_LEASE_S,
        max_connections: int = 64,
        engine: Engine | None = None,
    ) -> None:
        # Requests beyond the pool's size wait for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, decode_responses=True
        )
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._prefix = prefix
        self._lease_ms = int(lease_s * 1000)
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._load = self._redis.register_script(_LOAD)
        self._seed = self._redis.register_script(_SEED)
        self._engine = engine
        self._seeding: dict[int, asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # --- names -------------------------------------------------------------------------

    def account(self, key_id: int) -> str:
        return f"{self._prefix}:budget:{key_id}"

    def _keys(self, key_id: int) -> list[str]:
        acct = self.account(key_id)
        return [acct, acct + ":res", acct + ":exp", self._registry]

    @property
    def _registry(self) -> str:
        return f"{self._prefix}:budget:ids"

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self._redis.ping()

    async def aclose(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self._redis.aclose()

    # --- loading -----------------------------------------------------------------------

    async def begin_load(self) -> Marks:
        """Each known key's settled total; call before reading the keys from the database."""
        ids = [int(i) for i in await self._redis.smembers(self._registry)]
        if not ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hget(self.account(key_id), "settled")
            values = await pipe.execute()
        return {key_id: int(v or 0) for key_id, v in zip(ids, values, strict=True)}

    async def load(self, keys: Mapping[str, KeyRecord], marks: Marks | None = None) -> None:
        """Set each key's budget and spent amount from the database; reservations stay."""
        records = list(keys.values())
        if not records:
            return
        args: list[Any] = []
        for k in records:
            mark = -1 if marks is None else marks.get(k.id, 0)
            budget = "none" if k.budget_nanos is None else str(k.budget_nanos)
            args += [k.id, budget, str(k.spent_nanos), mark]
        accounts = [self.account(k.id) for k in records]
        await self._load(keys=[self._registry, *accounts], args=args)

    # --- reserve and settle ------------------------------------------------------------

    async def reserve(self, key: KeyRecord, nanos: int) -> Reservation:
        reservation = Reservation(key.id, nanos, secrets.token_hex(8))
        seed_budget = "none" if key.budget_nanos is None else str(key.budget_nanos)
        # A key without a budget needs no spent amount: its account may be seeded at once.
        from_record = "1" if self._engine is None or key.budget_nanos is None else "0"
        args: list[str | int] = [
            nanos, seed_budget, key.spent_nanos, reservation.id, self._lease_ms, key.id, from_record
        ]
        try:
            ok, available = await self._reserve(keys=self._keys(key.id), args=args)
            if ok == -1:  # Redis holds no account for the key: seed it from the ledger
                await self._reseed(key)
                ok, available = await self._reserve(keys=self._keys(key.id), args=args)
        except asyncio.CancelledError:
            # The script may have run: release whatever it reserved.
            self._in_background(self._settle_now(reservation, 0))
            raise
        except RedisError as exc:
            log.error("budget reservation failed: %s", exc)
            raise Unavailable("The budget store is unavailable; try again later.") from None
        if ok != 1:
            raise budget_exhausted(key.name, nanos, max(int(available), 0))
        return reservation

    async def _reseed(self, key: KeyRecord) -> None:
        """Seed the key's lost account from the database, once however many requests ask."""
        pending = self._seeding.get(key.id)
        if pending is None:
            pending = asyncio.ensure_future(self._seed_from_ledger(key))
            self._seeding[key.id] = pending
            pending.add_done_callback(lambda _f: self._seeding.pop(key.id, None))
        await asyncio.shield(pending)

    async def _seed_from_ledger(self, key: KeyRecord) -> None:
        assert self._engine is not None
        acct = self.account(key.id)
        mark = int(await self._redis.hget(acct, "settled") or 0)
        try:
            spent = await asyncio.to_thread(key_store.committed_spent, self._engine, key.id)
        except Exception as exc:
            log.error("re-seeding the budget of key %s: the database is unreachable: %s", key.id, exc)
            raise Unavailable("The budget store is unavailable; try again later.") from None
        budget = "none" if key.budget_nanos is None else str(key.budget_nanos)
        if await self._seed(keys=[acct, self._registry], args=[budget, spent, mark, key.id]):
            log.warning(
                "budget account of key %s was missing in Redis; re-seeded from the ledger "
                "(spent %s nanos)", key.id, spent,
            )

    async def settle(self, reservation: Reservation, actual_nanos: int) -> None:
        """Release the reservation and add the actual cost. Never raises: if Redis stays
        unreachable the reservation lapses with its lease and the cost is taken from the
        database at the next reload."""
        for delay in (*SETTLE_RETRY_DELAYS, None):
            try:
                await self._settle_now(reservation, actual_nanos)
                return
            except RedisError as exc:
                if delay is None:
                    log.error("budget settlement failed for key %s: %s", reservation.key_id, exc)
                    return
                await asyncio.sleep(delay)

    async def _settle_now(self, reservation: Reservation, actual_nanos: int) -> None:
        await self._settle(
            keys=self._keys(reservation.key_id),
            args=[reservation.id, actual_nanos, reservation.key_id],
        )

    def _in_background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("releasing a reservation failed: %s", task.exception())

    # --- inspection --------------------------------------------------------------------

    async def state(self, key_id: int) -> dict[str, int | None]:
        """The key's budget, spent and reserved amounts (budget None: no budget)."""
        raw = await self._redis.hgetall(self.account(key_id))
        values = {str(k): str(v) for k, v in raw.items()}
        budget = values.get("budget")
        return {
            "budget": None if budget is None or budget == "none" else int(budget),
            "spent": int(values.get("spent", 0)),
            "reserved": int(values.get("reserved", 0)),
        }

    async def balance(self, key_id: int) -> int | None:
        s = await self.state(key_id)
        if s["budget"] is None:
            return None
        return s["budget"] - (s["spent"] or 0) - (s["reserved"] or 0)

    async def delete_all(self) -> int:
        """Remove every key under this prefix (tests and resets); returns how many."""
        count = 0
        async for name in self._redis.scan_iter(match=f"{self._prefix}:budget:*", count=500):
            count += await self._redis.delete(name)
        return count


# GCRA in Redis' own clock, so replicas agree on time. KEYS[1] holds the key's theoretical
# arrival time in microseconds. ARGV: emission interval, tolerance (both microseconds).
# Returns 0 when admitted, else how many microseconds to wait.
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - tolerance > now then return tat - tolerance - now end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil((tat + interval - now) / 1000) + 1000)
return 0
"""


class RedisRateLimiter:
    """Per-key requests-per-minute limits shared by every replica (GCRA, one Lua script)."""

    def __init__(self, url: str, *, prefix: str = "gemgate") -> None:
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self._rate = self._redis.register_script(_RATE)

    async def check(self, key: KeyRecord) -> None:
        if not key.rpm:
            return
        interval_us = 60_000_000 // key.rpm
        try:
            wait_us = int(
                await self._rate(
                    keys=[f"{self._prefix}:rate:{key.id}"],
                    args=[interval_us, 60_000_000 - interval_us],
                )
            )
        except RedisError as exc:
            raise Unavailable(f"rate limits are unavailable: {type(exc).__name__}") from None
        if wait_us > 0:
            raise rate_limited(key.name, key.rpm, wait_us / 1_000_000)

    async def aclose(self) -> None:
        await self._redis.aclose()

"""Storage of cached contents, billed per token-hour as its own ledger rows.

A cache's storage is billed in periods of at most a day, from ``billed_until`` on: a live
cache once a day, an ended one (deleted, or expired) up to its end, after which it is
purged and its upstream copies deleted. Each period is a usage record of method
``cachedContents.storage`` whose request id names the cache and the period's start, so a
period written twice (two replicas, a retry) is recorded once; the record is written
before ``billed_until`` moves, so a crash between the two bills the period again under
the same id rather than losing it. Cost: tokens x hours x the model's ``cache_storage``
price (USD per 1M tokens per hour), in integer nanos, rounded once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gemgate.billing import Usage
from gemgate.limits.memory import Reservation
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.meter import Metered
from gemgate.pipeline.settle import Outcome
from gemgate.resources import names
from gemgate.resources.caches import CacheService
from gemgate.store import caches_sql
from gemgate.store.caches_sql import CacheRow

log = logging.getLogger("gemgate.caches")

PERIOD = timedelta(days=1)
METHOD = "cachedContents.storage"


def storage_nanos(tokens: int, span: timedelta, usd_per_million_hour: Decimal) -> int:
    seconds = Decimal(span.days * 86_400 + span.seconds) + Decimal(span.microseconds) / 1_000_000
    nanos = Decimal(tokens) * seconds * usd_per_million_hour * 1000 / 3600
    return int(nanos.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class CacheBilling:
    def __init__(self, caches: CacheService, serve: Any, keys: Any) -> None:
        self.caches = caches
        self.serve = serve
        self.keys = keys

    async def run(self) -> int:
        """Bill what is due and purge what ended; how many periods were billed."""
        at = names.now()
        rows = await asyncio.to_thread(caches_sql.billable, self.caches.engine, at - PERIOD, at)
        billed = 0
        for row in rows:
            billed += await self.bill(row, at)
        return billed

    async def bill(self, row: CacheRow, at: datetime) -> int:
        end = names.aware(row.expires_at)
        if row.deleted_at is not None:
            end = min(end, names.aware(row.deleted_at))
        stored: datetime = row.billed_until  # as read: the compare-and-set compares it
        periods = 0
        while True:
            start = names.aware(stored)
            stop = min(end, start + PERIOD)
            if stop <= start or stop > at:
                break
            await self._record(row, start, stop)
            if not await asyncio.to_thread(caches_sql.advance_billing, self.caches.engine, row.id, stored, stop):
                return periods  # another replica billed it
            stored = stop
            periods += 1
        if end <= at and names.aware(stored) >= end:
            await self.caches.drop_copies(row.id)
            await asyncio.to_thread(caches_sql.purge, self.caches.engine, row.id)
        return periods

    async def _record(self, row: CacheRow, start: datetime, stop: datetime) -> None:
        route = self.serve.router.find(row.model)
        rate = None
        version = None
        if route is not None:
            applied = route.priced(start)
            rate, version = applied.price.cache_storage, applied.version
        if rate is None:
            log.info("no storage price for model %s: cachedContents/%s stored free", row.model, row.id)
            rate = Decimal(0)
        cost = storage_nanos(row.tokens, stop - start, rate)
        key = next((k for k in self.keys.records.values() if k.id == row.key_id), None)
        ctx = RequestContext(door="gemini", method=METHOD)
        ctx.request_id = f"cache-{row.id}-{int(start.timestamp())}"
        ctx.key, ctx.route, ctx.started_at = key, route, start
        metered = Metered(Usage(), cost, version, "standard")
        settler = self.serve.settler
        await settler.settle(ctx, None, metered, Outcome("ok"))
        if key is not None and cost:
            budgets = self.serve.admission.budgets
            await budgets.settle(Reservation(key.id, 0, secrets.token_hex(8)), cost)

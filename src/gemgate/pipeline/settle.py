"""Settlement: one usage record per admitted request, committed before its final bytes.

The record carries the request's token counts by kind and modality, its cost, status and
flags; committing it adds the cost to the key's spent amount, then the request's budget
reservation is replaced by that cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from gemgate.billing.ledger import LedgerWriter
from gemgate.limits.memory import Reservation
from gemgate.metrics import Metrics
from gemgate.pipeline.capture import BodyCapture
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.meter import Metered

log = logging.getLogger("gemgate.settle")


class Budgets(Protocol):
    async def reserve(self, key: Any, nanos: int) -> Reservation: ...

    async def settle(self, reservation: Reservation, actual_nanos: int) -> None: ...


@dataclass(slots=True)
class Outcome:
    status: str  # ok | error | interrupted
    http_status: int = 200
    interrupted: bool = False
    error: str | None = None


def build_record(ctx: RequestContext, metered: Metered, outcome: Outcome) -> dict[str, Any]:
    route = ctx.route
    channel = ctx.channel
    u = metered.usage
    failed = [a.as_json() for a in ctx.attempts if a.error is not None]
    return {
        "request_id": ctx.request_id,
        "key_id": ctx.key.id if ctx.key else None,
        "key_name": ctx.key.name if ctx.key else None,
        "model": route.model_id if route else "",
        "provider": channel.provider_name if channel else "",
        "channel": channel.label if channel else None,
        "upstream_key": ctx.upstream_key,
        "attempts": len(ctx.attempts),
        "failed_attempts": orjson.dumps(failed).decode() if failed else None,
        "door": ctx.door,
        "method": ctx.method,
        "status": outcome.status,
        "http_status": outcome.http_status,
        "prompt_tokens": u.prompt_total,
        "prompt_text": u.prompt_text,
        "prompt_image": u.prompt_image,
        "prompt_audio": u.prompt_audio,
        "prompt_video": u.prompt_video,
        "prompt_document": u.prompt_document,
        "cached_tokens": u.cached_total,
        "tool_use_prompt_tokens": u.tool_use_prompt,
        "thoughts_tokens": u.thoughts,
        "output_text": u.output_text,
        "output_image": u.output_image,
        "output_audio": u.output_audio,
        "total_tokens": u.total,
        "cost_nanos": metered.cost_nanos,
        "estimated": u.estimated,
        "interrupted": outcome.interrupted,
        "streamed": ctx.streamed,
        "latency_ms": ctx.elapsed_ms(),
        "ttfb_ms": ctx.ttfb_ms(),
        "error": outcome.error,
        "started_at": ctx.started_at,
        "finished_at": datetime.now(UTC),
        "batch_id": ctx.batch,
        "price_version": metered.price_version,
        "service_tier": metered.service_tier,
    }


class BodySink(Protocol):
    def submit(self, request_id: str, key_id: int | None, capture: BodyCapture) -> None: ...


class Settler:
    def __init__(
        self,
        ledger: LedgerWriter | None,
        budgets: Budgets,
        metrics: Metrics | None = None,
        bodies: BodySink | None = None,
    ) -> None:
        self.bodies = bodies  # where kept bodies go once their record is committed
        self._metrics = metrics
        self._ledger = ledger
        self._budgets = budgets
        self._background: set[asyncio.Task[None]] = set()

    async def settle(
        self,
        ctx: RequestContext,
        reservation: Reservation | None,
        metered: Metered,
        outcome: Outcome,
    ) -> None:
        """Commit the record (when the ledger is on), then settle the reservation."""
        try:
            if self._ledger is not None:
                await self._ledger.commit(build_record(ctx, metered, outcome))
                if ctx.capture is not None and self.bodies is not None:
                    self.bodies.submit(ctx.request_id, ctx.key.id if ctx.key else None, ctx.capture)
        finally:
            if reservation is not None:
                # Whatever happened to the write, the reservation must not leak; the cost
                # counts as spent (the upstream was paid).
                await self._budgets.settle(reservation, metered.cost_nanos)
            if self._metrics is not None:
                self._metrics.observe(
                    ctx.door,
                    ctx.route.model_id if ctx.route else "",
                    outcome.status,
                    metered.usage,
                    metered.cost_nanos,
                    time.perf_counter() - ctx.started,
                )

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a settlement nobody awaits (its client has gone); it survives cancellation
        and is awaited at shutdown."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background settlement failed: %s", task.exception())

    async def drain(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

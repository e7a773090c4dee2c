"""One batch item: run by the gateway (the serve path's ``answer``: attempts, metering and
a usage record naming the batch, at the batch price) or billed from an upstream batch's
result; either way its cost is added to the key's spent amount as it arrives.

An item's usage record id is ``{batch}-{index}`` (``-{try}`` for the gateway's own
tries): a result billed twice (a replica resuming after another died) is recorded once.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.errors import GatewayError, ResourceExhausted, UpstreamError, as_gateway_error
from gemgate.limits.memory import Reservation
from gemgate.pipeline.admit import embed_prompt
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.meter import estimated_metadata, meter
from gemgate.pipeline.settle import Outcome
from gemgate.store.batches_sql import BatchRow
from gemgate.store.keys import KeyRecord
from gemgate.types.canonical import CanonicalRequest

log = logging.getLogger("gemgate.batches")

MAX_TRIES = 3
METHODS = {"generate": "batchGenerateContent", "embed": "asyncBatchEmbedContent"}


@dataclass(slots=True)
class ItemResult:
    response: dict[str, Any] | None
    error: dict[str, Any] | None
    retry: bool = False  # the channel failed: try the item again later


def status_of(exc: GatewayError) -> dict[str, Any]:
    """An item's error, as a google.rpc.Status."""
    return {"code": exc.code, "message": exc.message, "status": exc.status}


class ItemRunner:
    def __init__(self, serve: Any, bind: Any) -> None:
        self.serve = serve
        self.bind = bind

    async def charge(self, key: KeyRecord, nanos: int) -> None:
        if nanos:
            await self.serve.admission.budgets.settle(Reservation(key.id, 0, secrets.token_hex(8)), nanos)

    def _context(self, row: BatchRow, key: KeyRecord, route: Any, request_id: str) -> RequestContext:
        ctx = RequestContext(door="gemini", method=METHODS[row.kind])
        ctx.key, ctx.route, ctx.batch, ctx.request_id = key, route, row.id, request_id
        return ctx

    async def run(self, row: BatchRow, key: KeyRecord, route: Any, idx: int, tries: int, stored: str) -> ItemResult:
        """Run one item through the serve path (bound to the key's resources)."""
        request = orjson.loads(stored)["request"]
        method = "embedContent" if row.kind == "embed" else "generateContent"
        creq = CanonicalRequest(model=route.model_id, method=method, body=request)  # type: ignore[arg-type]
        ctx = self._context(row, key, route, f"{row.id}-{idx}-{tries}")
        try:
            await self.bind(key, route, creq)
            answer = await self.serve.answer(ctx, route, creq)
        except GatewayError as exc:
            retry = isinstance(exc, UpstreamError | ResourceExhausted) and tries + 1 < MAX_TRIES
            if not retry:
                log.info("batch %s item %d failed: %s", row.id, idx, exc.message)
            return ItemResult(None, status_of(exc), retry)
        except Exception as exc:
            return ItemResult(None, status_of(as_gateway_error(exc, ctx.request_id)))
        await self.charge(key, answer.cost_nanos)
        return ItemResult(answer.reply.json(), None)

    async def bill(
        self,
        row: BatchRow,
        key: KeyRecord,
        route: Any,
        channel: Any,
        upstream_key: Any,
        idx: int,
        stored: str,
        response: dict[str, Any] | None,
        error: dict[str, Any] | None,
    ) -> None:
        """Record (and charge) one result of a batch the upstream ran."""
        ctx = self._context(row, key, route, f"{row.id}-{idx}")
        ctx.channel = channel
        ctx.upstream_key = upstream_key.label if upstream_key is not None else None
        price = route.priced(row.created_at, "batch")
        usage = (response or {}).get("usageMetadata")
        if response is None:
            metered, outcome = meter(None, price), Outcome("error", int((error or {}).get("code") or 500),
                                                             error=str((error or {}).get("message")))
        elif isinstance(usage, dict):
            metered, outcome = meter(usage, price), Outcome("ok")
        else:
            request = orjson.loads(stored)["request"]
            prompt = await self.serve.admission.prompt_tokens(
                embed_prompt(request) if row.kind == "embed" else request
            )
            metered, outcome = meter(estimated_metadata(prompt, 0), price, estimated=True), Outcome("ok")
        await self.serve.settler.settle(ctx, None, metered, outcome)
        await self.charge(key, metered.cost_nanos)

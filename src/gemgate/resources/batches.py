"""Batches: created from inline requests or a JSONL file, worked in the background, shown
as Google's long-running Operations.

Creating a batch validates every request, reserves the batch's worst case (each request's
worst case at the batch price) from the key's budget, refusing it at once when that does
not fit, and stores the batch and its items; a background worker (:mod:`.batch_worker`)
then runs it. A batch's Operation (``batches/{id}``) carries ``metadata`` (a
``GenerateContentBatch`` or ``EmbedContentBatch``: state, stats, times, and the output once
it succeeded) and, when done, ``done`` with the ``response`` (the same output) or an
``error``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import orjson

from gemgate.errors import InvalidArgument, NotFound
from gemgate.pipeline.authorize import check_model
from gemgate.resources import names
from gemgate.resources.batch_input import BatchInput, Item, field
from gemgate.store import batches_sql
from gemgate.store.batches_sql import BatchRow, ItemRow
from gemgate.store.keys import KeyRecord

TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
KINDS = {"generate": "GenerateContentBatch", "embed": "EmbedContentBatch"}
PENDING, RUNNING = "BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"
SUCCEEDED, FAILED = "BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED"
CANCELLED, EXPIRED = "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"
BATCH_TTL = timedelta(hours=48)
MAX_ITEMS = 100_000


class BatchService:
    def __init__(self, engine: Any, serve: Any, batch_input: BatchInput, worker: Any) -> None:
        self.engine = engine
        self.serve = serve
        self.input = batch_input
        self.worker = worker

    async def _db(self, fn: Any, *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, self.engine, *args, **kw)

    async def create(self, key: KeyRecord, model: str, kind: str, data: dict[str, Any]) -> BatchRow:
        serve = self.serve
        route = serve.router.resolve(model, "batchGenerateContent")
        check_model(key, route.model_id)
        admission = serve.admission
        if admission.ledger is not None:
            admission.ledger.check_available()  # never accept work whose usage cannot be recorded
        if key.rpm and admission.limiter is not None:
            await admission.limiter.check(key)
        display, inline, file_id = self.input.source(data)
        at = names.now()
        price = route.priced(at, "batch").price
        items: list[Item] = []
        if inline is not None:
            for i, entry in enumerate(inline):
                where = f"batch.inputConfig.requests.requests[{i}]"
                item = await self.input.item(key, route, kind, i, field(entry, "request"), f"{where}.request", price)
                item.metadata = field(entry, "metadata")
                items.append(item)
        else:
            assert file_id is not None
            async for key_name, request in self.input.lines(key, file_id):
                where = f"files/{file_id} line {len(items) + 1}"
                item = await self.input.item(key, route, kind, len(items), request, where, price)
                item.key = key_name
                items.append(item)
                if len(items) > MAX_ITEMS:
                    raise InvalidArgument(f"A batch may hold at most {MAX_ITEMS} requests.")
            if not items:
                raise InvalidArgument(f"files/{file_id} holds no requests.")
        worst = sum(i.worst_nanos for i in items)
        reservation = None
        if key.budget_nanos is not None:
            reservation = await admission.budgets.reserve(key, worst)
        batch_id = names.new_id()
        values = {
            "id": batch_id, "key_id": key.id, "kind": kind, "model": route.model_id,
            "display_name": display, "state": PENDING, "input_file": file_id, "output_file": None,
            "item_count": len(items), "succeeded": 0, "failed": 0, "reserved_nanos": worst,
            "channel": None, "holder": None, "upstream_name": None,
            "lease_owner": self.worker.owner, "lease_until": at + self.worker.lease,
            "error": None, "created_at": at, "updated_at": at, "end_time": None,
            "expires_at": at + BATCH_TTL,
        }
        try:
            await self._db(batches_sql.create, values, [i.row(batch_id) for i in items])
        except BaseException:
            if reservation is not None:
                await admission.budgets.settle(reservation, 0)
            raise
        self.worker.adopt(batch_id, reservation)
        return BatchRow(**values)

    async def get(self, key: KeyRecord, batch_id: str) -> BatchRow:
        row = await self._db(batches_sql.get, batch_id, key.id)
        if row is None:
            raise NotFound(f"Batch batches/{batch_id} is not found.")
        return row

    async def page(self, key: KeyRecord, size: int, after: Any) -> tuple[list[BatchRow], bool]:
        rows = await self._db(batches_sql.page, key.id, size, after)
        return rows[:size], len(rows) > size

    async def cancel(self, key: KeyRecord, batch_id: str) -> None:
        row = await self.get(key, batch_id)
        if not row.done:
            at = names.now()
            await self._db(batches_sql.set_state, row.id, CANCELLED, at, end_time=at)
            self.worker.wake()

    async def delete(self, key: KeyRecord, batch_id: str) -> None:
        await self.cancel(key, batch_id)
        await self._db(batches_sql.remove, key.id, batch_id)

    async def operation(self, row: BatchRow) -> dict[str, Any]:
        items = None
        if row.state == SUCCEEDED and row.output_file is None:
            items = await self._db(batches_sql.items, row.id)
        return operation(row, items)


def _entry(item: ItemRow) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if item.response is not None:
        entry["response"] = orjson.loads(item.response)
    else:
        entry["error"] = orjson.loads(item.error or '{"code": 500, "message": "no result"}')
    metadata = orjson.loads(item.request).get("metadata")
    if metadata is not None:
        entry["metadata"] = metadata
    return entry


def operation(row: BatchRow, items: list[ItemRow] | None = None) -> dict[str, Any]:
    kind = KINDS[row.kind]
    stats = {"requestCount": str(row.item_count)}
    pending = row.item_count - row.succeeded - row.failed
    for name, count in (("successfulRequestCount", row.succeeded), ("failedRequestCount", row.failed),
                        ("pendingRequestCount", pending)):
        if count > 0:
            stats[name] = str(count)
    meta: dict[str, Any] = {
        "@type": TYPE + kind,
        "model": f"models/{row.model}",
        "displayName": row.display_name or "",
        "createTime": names.timestamp(row.created_at),
        "updateTime": names.timestamp(row.updated_at),
    }
    if row.end_time is not None:
        meta["endTime"] = names.timestamp(row.end_time)
    meta |= {"batchStats": stats, "state": row.state, "name": f"batches/{row.id}"}
    op: dict[str, Any] = {"name": f"batches/{row.id}", "metadata": meta}
    if row.state == SUCCEEDED:
        if row.output_file is not None:
            output: dict[str, Any] = {"responsesFile": f"files/{row.output_file}"}
        else:
            output = {"inlinedResponses": {"inlinedResponses": [_entry(i) for i in items or []]}}
        meta["output"] = output
        op["done"] = True
        op["response"] = {"@type": TYPE + kind + "Output", **output}
    elif row.done:
        op["done"] = True
        if row.error:
            op["error"] = orjson.loads(row.error)
    return op

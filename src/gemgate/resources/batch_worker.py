"""The background worker of batches: exactly one replica works a batch at a time.

Every replica looks for unfinished batches it may work: those without a lease, with its
own, or with one that ran out (a replica that died). It takes the lease by
compare-and-set and renews it while it works; losing the lease stops the work. A batch
the replica itself created is adopted at once, with the budget reservation made at its
creation; a batch taken over reserves what its unfinished items may still cost (and waits
while the key's budget cannot cover that).

A batch goes to the model's first channel: a Google channel runs it upstream (submitted,
then polled until done, its results billed item by item); any other channel has the
gateway run it here, item after item, at most ``[batches] concurrency`` at a time and each
only when no interactive request is in flight in this process. Finished items are kept,
so a resumed batch carries on with the rest. Ending the batch (succeeded, failed,
cancelled, expired) writes its responses file when its input was a file and releases
what is left of its reservation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from datetime import timedelta
from typing import Any

import orjson

from gemgate.errors import GatewayError, UpstreamError
from gemgate.limits.memory import Reservation
from gemgate.resources import names
from gemgate.resources.batch_run import ItemRunner, status_of
from gemgate.resources.batch_upstream import UpstreamBatches
from gemgate.resources.batches import CANCELLED, EXPIRED, FAILED, RUNNING, SUCCEEDED
from gemgate.resources.copies import find_holder
from gemgate.resources.files import FileService
from gemgate.resources.traffic import Traffic
from gemgate.store import batches_sql
from gemgate.store.batches_sql import BatchRow

log = logging.getLogger("gemgate.batches")

LEASE = timedelta(seconds=30)
LOOK_S = 1.0
UPSTREAM_POLL_S = 1.0
RETRY_S = 2.0
_STATES = {"BATCH_STATE_FAILED": FAILED, "BATCH_STATE_CANCELLED": CANCELLED, "BATCH_STATE_EXPIRED": EXPIRED}


class LeaseLost(Exception):
    pass


class BatchWorker:
    def __init__(
        self,
        engine: Any,
        serve: Any,
        keys: Any,
        runner: ItemRunner,
        upstream: UpstreamBatches,
        files: FileService,
        traffic: Traffic,
        concurrency: int,
    ) -> None:
        self.engine = engine
        self.serve = serve
        self.keys = keys
        self.runner = runner
        self.upstream = upstream
        self.files = files
        self.traffic = traffic
        self.concurrency = concurrency
        self.owner = secrets.token_hex(8)
        self.lease = LEASE
        self._held: dict[str, Reservation | None] = {}
        self._working: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    async def _db(self, fn: Any, *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, self.engine, *args, **kw)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._look())

    async def aclose(self) -> None:
        tasks = [t for t in (self._loop_task, *self._working.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for batch_id in list(self._held):
            # Leases run out by themselves; give them up now so another replica resumes at once.
            with contextlib.suppress(Exception):
                await self._db(batches_sql.release, batch_id, self.owner)

    def adopt(self, batch_id: str, reservation: Reservation | None) -> None:
        self._held[batch_id] = reservation
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def _look(self) -> None:
        while True:
            try:
                at = names.now()
                for batch_id in await self._db(batches_sql.claimable, self.owner, at):
                    if batch_id in self._working:
                        continue
                    if await self._db(batches_sql.claim, batch_id, self.owner, at, at + self.lease):
                        task = asyncio.get_running_loop().create_task(self._work(batch_id))
                        self._working[batch_id] = task
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("looking for batches to work failed", exc_info=True)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), LOOK_S)

    # --- one batch -----------------------------------------------------------------------

    async def _work(self, batch_id: str) -> None:
        renew = asyncio.get_running_loop().create_task(self._renew(batch_id, asyncio.current_task()))
        try:
            await self._run(batch_id)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.warning("working batch %s failed; it will be resumed", batch_id, exc_info=True)
            await asyncio.sleep(RETRY_S)
        finally:
            renew.cancel()
            self._working.pop(batch_id, None)
            with contextlib.suppress(Exception):
                row = await self._db(batches_sql.get, batch_id)
                if row is None or row.done:
                    await self._release(batch_id)
                await self._db(batches_sql.release, batch_id, self.owner)

    async def _renew(self, batch_id: str, work: asyncio.Task[Any] | None) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            at = names.now()
            if not await self._db(batches_sql.claim, batch_id, self.owner, at, at + self.lease):
                log.warning("batch %s: lease lost; another replica works it", batch_id)
                self._held.pop(batch_id, None)
                if work is not None:
                    work.cancel()
                return

    async def _release(self, batch_id: str) -> None:
        reservation = self._held.pop(batch_id, None)
        if reservation is not None:
            await self.serve.admission.budgets.settle(reservation, 0)

    async def _reserve(self, row: BatchRow, key: Any) -> bool:
        """Hold a reservation for what the batch may still cost; False: not now."""
        if row.id in self._held or key.budget_nanos is None:
            self._held.setdefault(row.id, None)
            return True
        pending = await self._db(batches_sql.pending_count, row.id)
        nanos = math.ceil(row.reserved_nanos * pending / max(row.item_count, 1))
        try:
            self._held[row.id] = await self.serve.admission.budgets.reserve(key, nanos)
        except GatewayError as exc:
            log.info("batch %s waits: %s", row.id, exc.message)
            return False
        return True

    async def _run(self, batch_id: str) -> None:
        row = await self._db(batches_sql.get, batch_id)
        if row is None or row.done:
            return
        at = names.now()
        if names.aware(row.expires_at) <= at:
            await self._end(row, EXPIRED)
            return
        key = next((k for k in self.keys.records.values() if k.id == row.key_id), None)
        route = self.serve.router.find(row.model)
        if key is None or key.revoked_at is not None or route is None:
            why = "its API key is gone" if key is None or key.revoked_at else f"model {row.model} is not served"
            await self._end(row, FAILED, {"code": 400, "message": f"The batch cannot run: {why}.",
                                          "status": "FAILED_PRECONDITION"})
            return
        if not await self._reserve(row, key):
            await asyncio.sleep(RETRY_S)
            return
        if row.channel is None:
            row = await self._decide(row, key, route)
            if row is None or row.done:
                return
        if row.upstream_name:
            await self._upstream(row, key, route)
        else:
            await self._local(row, key, route)

    async def _decide(self, row: BatchRow, key: Any, route: Any) -> BatchRow | None:
        """Submit to the model's Google channel, or mark the batch as the gateway's own."""
        items = await self._db(batches_sql.items, row.id)
        try:
            sent = await self.upstream.submit(
                key, route, row.kind, row.display_name or f"batches/{row.id}", items, row.input_file is not None
            )
        except UpstreamError:
            raise  # the channels are down: tried again later
        except GatewayError as exc:
            await self._end(row, FAILED, status_of(exc))
            return None
        if sent is None:
            await self._db(batches_sql.set_values, row.id, channel="")
        else:
            await self._db(batches_sql.set_values, row.id, channel=sent.channel, holder=sent.holder,
                           upstream_name=sent.upstream_name)
        return await self._db(batches_sql.get, row.id)

    # --- run upstream --------------------------------------------------------------------

    async def _upstream(self, row: BatchRow, key: Any, route: Any) -> None:
        found = find_holder(self.serve.router, row.channel or "", row.holder or "")
        if found is None:
            await self._end(row, FAILED, {"code": 503, "message": f"Channel {row.channel} is no longer configured.",
                                          "status": "UNAVAILABLE"})
            return
        channel, upstream_key = found
        assert row.upstream_name is not None
        while True:
            current = await self._db(batches_sql.get, row.id)
            if current is None or current.state == CANCELLED:
                with contextlib.suppress(GatewayError):
                    await self.upstream.cancel(channel, upstream_key, row.upstream_name)
                return
            try:
                op = await self.upstream.poll(channel, upstream_key, row.upstream_name)
            except UpstreamError:
                raise  # the channel failed: polled again later
            except GatewayError as exc:
                # The upstream no longer knows the batch (or refuses it): it cannot finish.
                await self._end(current, FAILED, status_of(exc))
                return
            state = str((op.get("metadata") or {}).get("state") or "")
            if state == SUCCEEDED:
                results = await self.upstream.results(channel, upstream_key, op)
                stored = {i.idx: i for i in await self._db(batches_sql.items, row.id)}
                for result in results:
                    item = stored.get(result.idx)
                    if item is None or item.response is not None or item.error is not None:
                        continue
                    await self.runner.bill(current, key, route, channel, upstream_key, result.idx,
                                           item.request, result.response, result.error)
                    await self._db(batches_sql.record_item, row.id, result.idx, at=names.now(),
                                   response=_dump(result.response), error=_dump(result.error))
                await self._end(current, SUCCEEDED)
                return
            if state in _STATES:
                await self._end(current, _STATES[state], op.get("error"))
                return
            if state == RUNNING and current.state != RUNNING:
                await self._db(batches_sql.set_state, row.id, RUNNING, names.now())
            await asyncio.sleep(UPSTREAM_POLL_S)

    # --- run here ------------------------------------------------------------------------

    async def _local(self, row: BatchRow, key: Any, route: Any) -> None:
        if row.state != RUNNING:
            await self._db(batches_sql.set_state, row.id, RUNNING, names.now())
        slots = asyncio.Semaphore(self.concurrency)
        while True:
            pending = await self._db(batches_sql.items, row.id, pending_only=True, limit=100)
            if not pending:
                break
            started: list[asyncio.Task[bool]] = []
            try:
                for item in pending:
                    current = await self._db(batches_sql.get, row.id)
                    if current is None or current.done:
                        return  # cancelled or deleted
                    await slots.acquire()
                    await self.traffic.idle()  # interactive requests first
                    started.append(
                        asyncio.get_running_loop().create_task(self._item(current, key, route, item, slots))
                    )
                results = await asyncio.gather(*started, return_exceptions=True)
            finally:
                for task in started:
                    task.cancel()
            for result in results:
                if isinstance(result, BaseException):
                    log.warning("batch %s: an item failed to run: %r", row.id, result)
            if any(r is not False for r in results):
                await asyncio.sleep(RETRY_S)  # some items are tried again
        current = await self._db(batches_sql.get, row.id)
        if current is not None and not current.done:
            await self._end(current, SUCCEEDED)

    async def _item(self, row: BatchRow, key: Any, route: Any, item: Any, slots: asyncio.Semaphore) -> bool:
        try:
            await self._db(batches_sql.add_try, row.id, item.idx)
            result = await self.runner.run(row, key, route, item.idx, item.tries, item.request)
            if result.retry:
                return True
            await self._db(batches_sql.record_item, row.id, item.idx, at=names.now(),
                           response=_dump(result.response), error=_dump(result.error))
            return False
        finally:
            slots.release()

    # --- the end -------------------------------------------------------------------------

    async def _end(self, row: BatchRow, state: str, error: Any = None) -> None:
        at = names.now()
        values: dict[str, Any] = {"end_time": at}
        if error is not None:
            values["error"] = orjson.dumps(error).decode()
        if state == SUCCEEDED and row.input_file is not None:
            values["output_file"] = await self._responses_file(row)
        await self._db(batches_sql.set_state, row.id, state, at, **values)
        await self._release(row.id)

    async def _responses_file(self, row: BatchRow) -> str:
        """The results as JSONL, one line per request: ``{"key", "response"}`` or
        ``{"key", "status"}``, kept as a file of the batch's key."""
        items = await self._db(batches_sql.items, row.id)
        lines = []
        for item in items:
            entry: dict[str, Any] = {"key": item.item_key}
            if item.response is not None:
                entry["response"] = orjson.loads(item.response)
            else:
                entry["status"] = orjson.loads(item.error or '{"code": 500, "message": "no result"}')
            lines.append(orjson.dumps(entry) + b"\n")
        key = next((k for k in self.keys.records.values() if k.id == row.key_id), None)
        assert key is not None

        async def pieces() -> Any:
            for line in lines:
                yield line

        made = await self.files.create(
            key, display_name=f"batches/{row.id} responses", mime_type="application/jsonl",
            size=sum(len(line) for line in lines), pieces=pieces(), source="GENERATED",
        )
        return made.id


def _dump(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None

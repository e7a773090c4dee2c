"""The ledger writer: usage records committed in groups by one dedicated thread.

A request hands its record to :meth:`LedgerWriter.commit` and awaits it; the writer thread
takes every record waiting (up to ``batch_max``), inserts them and adds their costs to the
keys' ``spent_nanos`` in ONE transaction, commits, and then wakes all their awaiters with a
single call into the event loop. A response's final bytes are released only after that, so
a crash never loses the record of an answer a client received complete, and a request pays
one shared commit rather than its own database round trip.

A record whose request id is already in the ledger is not written twice (the insert skips
known request ids; a batch in which any was skipped is redone with an explicit check, so
costs are added only for records actually written), so a retried batch never duplicates a
record or its cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select

from gemgate.store.ledger_sql import LedgerStatements
from gemgate.store.tables import usage_records

log = logging.getLogger("gemgate.ledger")

_STOP = object()
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)


class LedgerWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        batch_max: int = 256,
        on_committed: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._on_committed = on_committed
        self.batches = 0  # how many commits were made (for tests and metrics)
        self.records = 0
        self._statements = LedgerStatements(engine.dialect)
        self._raw: Any = None  # the writer thread's own DB-API connection

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gemgate-ledger", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def commit(self, record: dict[str, Any]) -> asyncio.Future[None]:
        """Queue ``record``; the returned future resolves once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((record, future, loop))
        return future

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < self._batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            self._write_with_retries(batch)
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.close()
            self._raw = None

    def _write_with_retries(self, batch: list[Any]) -> None:
        records = [rec for rec, _fut, _loop in batch]
        error: BaseException | None = None
        for delay in (*RETRY_DELAYS, None):
            try:
                self._write(records)
                error = None
                break
            except Exception as exc:  # the database may be briefly locked or unreachable
                error = exc
                log.warning("ledger commit failed (%s); retrying", type(exc).__name__)
                self._drop_connection()
                if delay is None:
                    break
                time.sleep(delay)
        self.batches += 1
        if error is None:
            self.records += len(records)
            if self._on_committed is not None:
                try:
                    self._on_committed(records)
                except Exception:
                    log.exception("ledger commit callback failed")
        self._wake(batch, error)

    def _drop_connection(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()
            self._raw = None

    def _write(self, records: list[dict[str, Any]]) -> None:
        if self._raw is None:
            self._raw = self._engine.raw_connection()
        conn = self._raw
        cursor = conn.cursor()
        try:
            if self._statements.write(cursor, records) != len(records):
                # Some request ids were already recorded (a batch retried after a commit
                # whose answer was lost): redo it with only the new records, so no cost
                # is added twice.
                conn.rollback()
                fresh = self._unrecorded(records)
                if fresh:
                    self._statements.write(cursor, fresh)
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        finally:
            cursor.close()

    def _unrecorded(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [r["request_id"] for r in records]
        with self._engine.connect() as conn:
            seen = set(
                conn.execute(
                    select(usage_records.c.request_id).where(usage_records.c.request_id.in_(ids))
                ).scalars()
            )
        fresh = []
        for r in records:  # each request id once, even if a batch carried it twice
            if r["request_id"] not in seen:
                seen.add(r["request_id"])
                fresh.append(r)
        return fresh

    @staticmethod
    def _wake(batch: list[Any], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = defaultdict(list)
        for _rec, fut, loop in batch:
            by_loop[loop].append(fut)
        for loop, futures in by_loop.items():
            # A closed loop (shutdown) has nobody waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, futures, error)


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futures:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(RuntimeError(f"usage record could not be committed: {error}"))

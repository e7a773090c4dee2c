"""The ledger writer: usage records committed in groups, before their answers are released.

A request hands its record to :meth:`LedgerWriter.commit` and awaits the returned future;
records are inserted, and their costs added to the keys' ``spent_nanos``, in ONE
transaction per group, and every awaiter of the group is woken after the commit. A
response's final bytes are released only then, so a crash never loses the record of an
answer a client received complete, and a request pays a share of one commit rather than
its own database round trip.

Two paths, by what a commit costs:

* SQLite (a local file, a commit of a few tens of microseconds): the group is every record
  committed during one turn of the event loop (or, when the ledger has been quiet, the one
  record at once), written on the loop itself. No thread hop, so no wait for the GIL on
  either side of the commit. The loop never waits for a lock: a group that finds the
  database locked (another process writing) goes to the writer thread below, which waits
  and retries.
* PostgreSQL (a network round trip): a dedicated writer thread takes every record waiting,
  up to ``batch_max``, and commits them together, so the event loop never blocks on I/O.

A record whose request id is already in the ledger is not written twice (the insert skips
known request ids; a group in which any was skipped is redone with only the new records, so
no cost is added twice), so a retried group never duplicates a record or its cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, select

from gemgate.store.ledger_sql import LedgerStatements
from gemgate.store.tables import usage_records

log = logging.getLogger("gemgate.ledger")

_STOP = object()
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
# The event loop never waits for a lock: a locked database sends the group to the thread.
INLINE_BUSY_TIMEOUT_MS = 0
# With no commit for this long, a record is committed at once instead of waiting a turn of
# the event loop for others to group with it.
QUIET_S = 0.002

Item = tuple[dict[str, Any], "asyncio.Future[None]", asyncio.AbstractEventLoop]


class LedgerWriter:
    def __init__(self, engine: Engine, *, batch_max: int = 256) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._statements = LedgerStatements(engine.dialect)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._raw: Any = None  # the writer thread's own DB-API connection
        self._inline = engine.dialect.name == "sqlite"
        self._inline_raw: Any = None  # the event loop's connection (SQLite)
        self._pending: list[Item] = []
        self._flush_scheduled = False
        self._last_flush = 0.0
        self.batches = 0  # commits made (for tests and metrics)
        self.records = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gemgate-ledger", daemon=True)
        self._thread.start()
        if self._inline:
            self._inline_raw = self._connect(busy_timeout_ms=INLINE_BUSY_TIMEOUT_MS)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread and release the connections."""
        if self._pending:
            self._hand_over(self._take_pending())
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        if self._inline_raw is not None:
            with contextlib.suppress(Exception):
                self._inline_raw.close()
            self._inline_raw = None

    def commit(self, record: dict[str, Any]) -> asyncio.Future[None]:
        """Queue ``record``; the returned future resolves once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._inline_raw is None:
            self._queue.put((record, future, loop))
            return future
        self._pending.append((record, future, loop))
        if not self._flush_scheduled:
            if len(self._pending) == 1 and time.monotonic() - self._last_flush > QUIET_S:
                # Quiet: no group to gather. Commit now, and the awaiter finds its future
                # done without waiting for more turns of the loop.
                self._flush_inline()
                return future
            self._flush_scheduled = True
            loop.call_soon(self._flush_inline)
        return future


    # --- SQLite: group commit on the event loop ----------------------------------------------

    def _take_pending(self) -> list[Item]:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        return batch

    def _flush_inline(self) -> None:
        self._last_flush = time.monotonic()
        batch = self._take_pending()
        if not batch:
            return
        try:
            self._write(self._inline_raw, [rec for rec, _fut, _loop in batch])
        except Exception as exc:  # locked by another process, or failing: wait in the thread
            log.debug("inline ledger commit deferred to the writer thread: %s", exc)
            self._hand_over(batch)
            return
        self._committed(batch, None)

    def _hand_over(self, batch: list[Item]) -> None:
        for item in batch:
            self._queue.put(item)

    # --- the writer thread ----------------------------------------------------------------

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

    def _write_with_retries(self, batch: list[Item]) -> None:
        records = [rec for rec, _fut, _loop in batch]
        error: BaseException | None = None
        for delay in (*RETRY_DELAYS, None):
            try:
                if self._raw is None:
                    self._raw = self._connect()
                self._write(self._raw, records)
                error = None
                break
            except Exception as exc:  # the database may be briefly locked or unreachable
                error = exc
                log.warning("ledger commit failed (%s); retrying", type(exc).__name__)
                self._drop_connection()
                if delay is None:
                    break
                time.sleep(delay)
        self._committed(batch, error)

    def _drop_connection(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()
            self._raw = None

    # --- both paths -------------------------------------------------------------------------

    def _connect(self, busy_timeout_ms: int | None = None) -> Any:
        raw = self._engine.raw_connection()
        raw.detach()  # its settings below are the ledger's own: never back into the pool
        if self._engine.dialect.name == "sqlite":
            cursor = raw.cursor()
            # Checkpoints (an fsync) run in the store's checkpointer thread instead, never
            # inside a commit that requests are waiting for.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            if busy_timeout_ms is not None:
                cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.close()
        return raw

    def _write(self, conn: Any, records: list[dict[str, Any]]) -> None:
        cursor = conn.cursor()
        try:
            if self._statements.write(cursor, records) != len(records):
                # Some request ids were already recorded (a group retried after a commit
                # whose answer was lost): redo it with only the new records.
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
        for r in records:  # each request id once, even if a group carried it twice
            if r["request_id"] not in seen:
                seen.add(r["request_id"])
                fresh.append(r)
        return fresh

    def _committed(self, batch: list[Item], error: BaseException | None) -> None:
        """Count the group and wake its awaiters, in their own loops."""
        self.batches += 1
        if error is None:
            self.records += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = defaultdict(list)
        for _rec, fut, loop in batch:
            by_loop[loop].append(fut)
        for loop, futures in by_loop.items():
            if threading.current_thread() is not self._thread:
                _resolve(futures, error)  # on the loop already (the inline path)
                continue
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

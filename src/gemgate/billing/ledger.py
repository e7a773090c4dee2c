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

When the database fails (down, unreachable, or hung: one attempt is cut off after
:data:`ATTEMPT_TIMEOUT_S`), the ledger is marked unavailable and
:meth:`LedgerWriter.check_available` refuses new requests BEFORE their upstream call, at no
cost: requests are never paid for without a record. A group already in flight is retried
for up to :data:`RETRY_FOR_S`; then its awaiters get 503 UNAVAILABLE (their answers are
never released), and its records wait in a backlog that the writer thread commits, with
the probe of the database every :data:`PROBE_S`, as soon as the database answers again:
what the upstream was paid for is recorded, late. No awaiter waits longer than
:data:`COMMIT_WAIT_MAX_S`. The ledger heals by itself: the first successful commit or
probe makes it available again.
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

from gemgate.errors import Unavailable
from gemgate.store.db import Watchdog, connect_direct
from gemgate.store.ledger_sql import LedgerStatements
from gemgate.store.tables import usage_records

log = logging.getLogger("gemgate.ledger")

_STOP = object()
# The first retry is at once, on a fresh connection: a pooled connection the server closed
# is no outage.
RETRY_DELAYS = (0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
#: How long one commit attempt may take before its connection is shut down.
ATTEMPT_TIMEOUT_S = 5.0
#: How long a failing group is retried before its awaiters are told 503.
RETRY_FOR_S = 10.0
#: A commit running longer than this makes the ledger unavailable for new requests.
STALL_S = 2.0
#: While the ledger is unavailable, how often the database is tried again.
PROBE_S = 1.0
#: The longest any awaiter waits for its record (then 503; the record is still written).
COMMIT_WAIT_MAX_S = 30.0
#: Records kept for a late commit while the database is down; beyond this the oldest are
#: dropped, each logged.
BACKLOG_MAX = 20_000
RETRY_AFTER_S = 5
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
        self._watchdog = Watchdog(ATTEMPT_TIMEOUT_S, name="gemgate-ledger-watchdog")
        self._busy: Any = None  # the connection of the attempt in progress (writer thread)
        self._down_since: float | None = None  # set while the database is failing
        self._down_reason = ""
        self._backlog: list[dict[str, Any]] = []  # records whose awaiters were told 503
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

    # --- availability ------------------------------------------------------------------

    def check_available(self) -> None:
        """Raise :class:`~gemgate.errors.Unavailable` (503) while the ledger cannot commit:
        its last attempt failed, or a commit has been stuck for more than :data:`STALL_S`.
        No database round trip; call it before anything is paid for."""
        if self._down_since is not None:
            raise self._unavailable()
        busy = self._busy
        if busy is not None and self._watchdog.busy_for(busy) > STALL_S:
            raise self._unavailable()

    @property
    def available(self) -> bool:
        try:
            self.check_available()
        except Unavailable:
            return False
        return True

    @staticmethod
    def _unavailable() -> Unavailable:
        return Unavailable(
            "The usage ledger cannot record requests right now (its database is not "
            "answering); the request was not sent. Try again later.",
            reason="LEDGER_UNAVAILABLE",
            retry_after=RETRY_AFTER_S,
        )

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error("the usage ledger cannot commit (%s): refusing new requests", _describe(exc))
        self._down_reason = _describe(exc)

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.warning(
                "the usage ledger commits again after %.1f s", time.monotonic() - self._down_since
            )
            self._down_since = None

    # --- commit ----------------------------------------------------------------------------

    def commit(self, record: dict[str, Any]) -> asyncio.Future[None]:
        """Queue ``record``; the returned future resolves once it is durable, or fails with
        :class:`~gemgate.errors.Unavailable` when it could not be committed in time."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._inline_raw is None:
            self._queue.put((record, future, loop))
            timer = loop.call_later(COMMIT_WAIT_MAX_S, _expire, future)
            future.add_done_callback(lambda _f: timer.cancel())
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
        self._mark_up()
        self._committed(batch, None)

    def _hand_over(self, batch: list[Item]) -> None:
        for item in batch:
            self._queue.put(item)

    # --- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            waiting = self._down_since is not None or bool(self._backlog)
            try:
                item = self._queue.get(timeout=PROBE_S if waiting else None)
            except queue.Empty:
                self._probe()
                continue
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
        if self._backlog:
            self._probe()
        if self._backlog:
            log.error("%d usage records could not be committed before shutdown", len(self._backlog))
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.close()
            self._raw = None

    def _write_with_retries(self, batch: list[Item]) -> None:
        records = [rec for rec, _fut, _loop in batch]
        error: BaseException | None = None
        # While the database is known to be failing, a group gets one attempt: its awaiters
        # learn at once, and the records join the backlog.
        delays = (None,) if self._down_since is not None else (*RETRY_DELAYS, None)
        deadline = time.monotonic() + RETRY_FOR_S
        for delay in delays:
            try:
                self._attempt(records)
                error = None
                break
            except Exception as exc:  # the database may be briefly locked or unreachable
                error = exc
                log.warning("ledger commit failed (%s); retrying", _describe(exc))
                if delay is None or time.monotonic() + delay > deadline:
                    break
                if delay:
                    self._mark_down(exc)  # a fresh connection failed too
                time.sleep(delay)
        if error is None:
            self._mark_up()
        else:
            self._mark_down(error)
            self._keep(records)
        self._committed(batch, error)

    def _attempt(self, records: list[dict[str, Any]] | None) -> None:
        """One commit of ``records`` (None: a probe), cut off after ATTEMPT_TIMEOUT_S."""
        try:
            if self._raw is None:
                self._raw = self._connect()
            self._busy = self._raw
            self._watchdog.begin(self._raw)
            try:
                if records is None:
                    cursor = self._raw.cursor()
                    try:
                        cursor.execute("SELECT 1")
                    finally:
                        cursor.close()
                    self._raw.rollback()
                else:
                    self._write(self._raw, records)
            finally:
                self._watchdog.end(self._raw)
                self._busy = None
        except Exception:
            self._drop_connection()
            raise

    def _keep(self, records: list[dict[str, Any]]) -> None:
        self._backlog.extend(records)
        if len(self._backlog) > BACKLOG_MAX:
            dropped = self._backlog[: len(self._backlog) - BACKLOG_MAX]
            del self._backlog[: len(dropped)]
            for rec in dropped:
                log.error(
                    "usage record %s dropped: the ledger could not commit it (cost %s nanos)",
                    rec.get("request_id"), rec.get("cost_nanos"),
                )

    def _probe(self) -> None:
        """While failing: try the database again, committing the backlog when there is one."""
        try:
            if not self._backlog:
                self._attempt(None)
            while self._backlog:
                group = self._backlog[: self._batch_max]
                self._attempt(group)
                del self._backlog[: len(group)]
                self.batches += 1
                self.records += len(group)
                log.warning("committed %d usage records late", len(group))
        except Exception as exc:
            self._mark_down(exc)
            return
        self._mark_up()

    def _drop_connection(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                (getattr(self._raw, "invalidate", None) or self._raw.close)()
            self._raw = None

    # --- both paths -------------------------------------------------------------------------

    def _connect(self, busy_timeout_ms: int | None = None) -> Any:
        raw = connect_direct(self._engine)
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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futures:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            log.error("usage record could not be committed in time: %s", _describe(error))
            fut.set_exception(
                Unavailable(
                    "The usage ledger could not record this request in time; its answer "
                    "is withheld. Try again later.",
                    reason="LEDGER_UNAVAILABLE",
                    retry_after=RETRY_AFTER_S,
                )
            )


def _expire(future: asyncio.Future[None]) -> None:
    _resolve([future], TimeoutError(f"no commit within {COMMIT_WAIT_MAX_S:g} s"))

"""Background interactions (``background: true``): tasks owned by one gateway process,
held by a lease in the shared store so that every replica agrees on what still runs.

A run is stored as ``in_progress`` before it starts and stored again when it ends
(completed, failed or cancelled), so any replica's GET finds it. The call itself goes
through the serve path like any other, so it is metered and recorded once; a run that is
cancelled (by the client, or because the process is stopping) is recorded as interrupted
for what it cost. At shutdown, runs get a grace period to finish, then are cancelled and
stored as cancelled before the ledger drains: a restart leaves no paid call unrecorded
and no interaction claiming to run.

The lease: while a run goes on, its owner renews it every :data:`RENEW_S` (the turn's
``updated_at``), reading the stored status as it does; a status some other replica set
(``cancelled`` by a cancel it received, ``failed`` by a sweep) or a deleted turn cancels
the task. A run's end is stored only while it is still ``in_progress`` (a conditional
update), so it never overwrites such a status. A process killed outright renews nothing:
its runs' leases expire after :data:`LEASE_S`, and any replica (at start, every
:data:`SWEEP_S`, and whenever it reads an expired run) stores them as ``failed``, saying
the gateway that ran them stopped. What such a lost call cost upstream cannot be recorded:
its usage died with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gemgate.store import conversations
from gemgate.store.conversations import INTERACTION, Turn
from gemgate.translate.interactions_response import now_text

log = logging.getLogger("gemgate.interactions")

RUNNING = "in_progress"
SHUTDOWN_GRACE_S = 5.0
RENEW_S = 2.0
LEASE_S = 8.0
SWEEP_S = 15.0
LOST = ("The gateway that ran this background interaction stopped before it finished; "
        "run it again.")


def lost_body(turn: Turn) -> bytes:
    """The body of a run whose owner is gone: failed, with an error that says so."""
    obj = orjson.loads(turn.body)
    obj.update(status="failed", updated=now_text(), steps=[], errors=[{"code": "aborted", "message": LOST}])
    return orjson.dumps(obj)


def expired(turn: Turn, now: datetime | None = None) -> bool:
    """Whether a running turn's lease has run out (its owner renewed it too long ago)."""
    if turn.status != RUNNING or turn.updated_at is None:
        return False
    return turn.updated_at < (now or datetime.now(UTC)) - timedelta(seconds=LEASE_S)


class Runs:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # --- runs this process owns --------------------------------------------------------

    def start(self, interaction_id: str, key_id: int, work: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background interaction %s failed", interaction_id)

        task = asyncio.get_running_loop().create_task(run())
        lease = asyncio.get_running_loop().create_task(self._renew(interaction_id, key_id, task))
        self._tasks[interaction_id] = task

        def done(_t: asyncio.Task[None]) -> None:
            self._tasks.pop(interaction_id, None)
            lease.cancel()

        task.add_done_callback(done)

    async def _renew(self, interaction_id: str, key_id: int, task: asyncio.Task[None]) -> None:
        while not task.done():
            await asyncio.sleep(RENEW_S)
            try:
                status = await asyncio.to_thread(
                    conversations.renew, self.engine, INTERACTION, interaction_id, key_id, RUNNING
                )
            except Exception as exc:  # the store is busy or down: try again at the next beat
                log.warning("renewing the lease of interaction %s failed: %s", interaction_id, exc)
                continue
            if status != RUNNING:
                log.info("background interaction %s is %s elsewhere: stopping it", interaction_id,
                         status or "deleted")
                task.cancel()
                return

    def running(self, interaction_id: str) -> asyncio.Task[None] | None:
        return self._tasks.get(interaction_id)

    async def wait(self, interaction_id: str) -> None:
        task = self._tasks.get(interaction_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(task)

    async def cancel(self, interaction_id: str) -> bool:
        task = self._tasks.get(interaction_id)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return True

    # --- runs whose owner is gone --------------------------------------------------------

    def start_sweeping(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("sweeping lost background interactions failed: %s", exc)
            await asyncio.sleep(SWEEP_S)

    async def sweep(self) -> int:
        """Store every run whose lease expired as failed; how many were."""
        before = datetime.now(UTC) - timedelta(seconds=LEASE_S)
        found = await asyncio.to_thread(conversations.stale, self.engine, INTERACTION, RUNNING, before)
        count = 0
        for turn in found:
            if turn.id not in self._tasks and await self.fail_lost(turn):
                count += 1
        return count

    async def fail_lost(self, turn: Turn) -> bool:
        """Store ``turn`` (running, its lease expired) as failed, unless its owner renewed
        it or it ended meanwhile; whether it was."""
        failed = dataclasses.replace(turn, status="failed", body=lost_body(turn))
        before = datetime.now(UTC) - timedelta(seconds=LEASE_S)
        done = await asyncio.to_thread(conversations.save_if, self.engine, failed, RUNNING, before)
        if done:
            log.warning("background interaction %s was lost with the gateway that ran it", turn.id)
        return done

    async def aclose(self) -> None:
        """Let running interactions finish for a while, then cancel the rest."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

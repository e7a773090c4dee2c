"""Pruning the request log in the background: usage records and kept bodies older than
``[admin] log_retention_days`` (0: kept for ever), and expired console sessions.

It runs shortly after start and then every :data:`INTERVAL_S`, in a thread, deleting in
small batches with a pause between them (see :mod:`gemgate.store.retention`). With several
replicas each prunes; the deletes are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from gemgate.store import conversations, sessions
from gemgate.store.retention import prune_before

log = logging.getLogger("gemgate.admin")

FIRST_DELAY_S = 2.0
INTERVAL_S = 3600.0
PAUSE_S = 0.05  # between batches, so writers get the database in between


class Pruner:
    def __init__(self, engine: Engine, retention_days: int) -> None:
        self._engine = engine
        self._days = retention_days
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._batch = 5000 if engine.dialect.name == "postgresql" else 1000

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gemgate-log-pruner")

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def prune_once(self) -> dict[str, int]:
        deleted: dict[str, int] = {}
        if self._days > 0:
            cutoff = datetime.now(UTC) - timedelta(days=self._days)
            deleted = prune_before(
                self._engine, cutoff, batch=self._batch,
                keep_going=lambda: not self._stop.wait(PAUSE_S),
            )
        deleted["admin_sessions"] = sessions.prune(self._engine)
        deleted["conversation_turns"] = conversations.prune(self._engine)
        if any(deleted.values()):
            log.info("request log pruned: %s", ", ".join(f"{n} {t}" for t, n in deleted.items()))
        return deleted

    async def _run(self) -> None:
        await asyncio.sleep(FIRST_DELAY_S)
        while True:
            try:
                await asyncio.to_thread(self.prune_once)
            except Exception:
                log.warning("pruning the request log failed; retrying later", exc_info=True)
            await asyncio.sleep(INTERVAL_S)

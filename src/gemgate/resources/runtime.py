"""The stateful resources of one gateway process, built at startup and closed at shutdown.

:class:`Resources` holds the content store, the file, cache and batch services, the
binder that lets model calls name resources, the door that serves the resource
endpoints, and the background work: pruning what expired (files, abandoned uploads,
caches, whose storage it bills) and working batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from gemgate.doors.gemini_batches import BatchesEndpoints
from gemgate.doors.gemini_caches import CachesEndpoints
from gemgate.doors.gemini_files import FilesEndpoints
from gemgate.doors.gemini_resources import ResourceDoor
from gemgate.resources.batch_input import BatchInput
from gemgate.resources.batch_run import ItemRunner
from gemgate.resources.batch_upstream import UpstreamBatches
from gemgate.resources.batch_worker import BatchWorker
from gemgate.resources.batches import BatchService
from gemgate.resources.binding import Binder
from gemgate.resources.cache_billing import CacheBilling
from gemgate.resources.caches import CacheService
from gemgate.resources.content import ContentStore, DatabaseStore, LocalStore
from gemgate.resources.copies import FileCopies, Upstreams
from gemgate.resources.files import FileService
from gemgate.resources.traffic import Traffic
from gemgate.settings import Settings
from gemgate.store.keys import KeyRecord
from gemgate.types.canonical import CanonicalRequest

log = logging.getLogger("gemgate.resources")

def content_store(settings: Settings, engine: Any) -> ContentStore:
    if settings.files.store == "database":
        return DatabaseStore(engine)
    return LocalStore(Path(settings.files.dir))


class Resources:
    def __init__(self, settings: Settings, engine: Any, keys: Any, serve: Any) -> None:
        """``serve``: the serve path (its router, settler, budgets and counter)."""
        self.settings = settings
        self.engine = engine
        counter = serve.counter
        self.store = content_store(settings, engine)
        self.files = FileService(engine, self.store, counter, settings.files)
        self.upstreams = Upstreams()
        self.file_copies = FileCopies(self.files, self.upstreams)
        self.binder = Binder(self.files, self.file_copies)
        self.caches = CacheService(
            engine, serve.router, self.binder, self.file_copies, self.upstreams, counter
        )
        self.cache_billing = CacheBilling(self.caches, serve, keys)
        self.traffic = Traffic()
        self.worker = BatchWorker(
            engine, serve, keys, ItemRunner(serve, self.bind), UpstreamBatches(self.upstreams, self.binder),
            self.files, self.traffic, settings.batches.concurrency,
        )
        self.worker.lease = timedelta(seconds=settings.batches.lease_s)
        self.batches = BatchService(
            engine, serve, BatchInput(self.files, self.binder, serve.admission), self.worker
        )
        self.door = ResourceDoor(keys, settings.server.public_url)
        FilesEndpoints(self.files, self.door)
        CachesEndpoints(self.caches, self.door)
        BatchesEndpoints(self.batches, self.door)
        self.caches.on_delete = self._cache_ended
        self.files.on_forget = lambda copies: self._later(self.file_copies.forget(serve.router, copies))
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._prune_loop()))
        self.worker.start()

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _cache_ended(self, cache_id: str) -> None:
        """Bill a deleted cache's storage now rather than at the next pruning round."""
        self._later(self.cache_billing.run())

    async def aclose(self) -> None:
        await self.worker.aclose()
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def names_any(self, creq: CanonicalRequest) -> bool:
        return self.binder.names_any(creq)

    async def bind(self, key: KeyRecord, route: Any, creq: CanonicalRequest) -> None:
        await self.binder.bind(key, route, creq)

    async def prune(self) -> None:
        removed = await self.files.prune()
        if removed:
            log.info("removed %d expired files and abandoned uploads", removed)
        await self.cache_billing.run()

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("pruning expired resources failed", exc_info=True)
            await asyncio.sleep(self.settings.files.prune_s)

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
from pathlib import Path
from typing import Any

from gemgate.doors.gemini_files import FilesEndpoints
from gemgate.doors.gemini_resources import ResourceDoor
from gemgate.resources.binding import Binder
from gemgate.resources.content import ContentStore, DatabaseStore, LocalStore
from gemgate.resources.copies import FileCopies, Upstreams
from gemgate.resources.files import FileService
from gemgate.settings import Settings
from gemgate.store.keys import KeyRecord
from gemgate.types.canonical import CanonicalRequest

log = logging.getLogger("gemgate.resources")

#: How often expired resources are looked for.
PRUNE_EVERY_S = 60.0


def content_store(settings: Settings, engine: Any) -> ContentStore:
    if settings.files.store == "database":
        return DatabaseStore(engine)
    return LocalStore(Path(settings.files.dir))


class Resources:
    def __init__(self, settings: Settings, engine: Any, keys: Any, counter: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.store = content_store(settings, engine)
        self.files = FileService(engine, self.store, counter, settings.files)
        self.upstreams = Upstreams()
        self.file_copies = FileCopies(self.files, self.upstreams)
        self.binder = Binder(self.files, self.file_copies)
        self.door = ResourceDoor(keys, settings.server.public_url)
        FilesEndpoints(self.files, self.door)
        self._tasks: list[asyncio.Task[None]] = []
        self.prune_every_s = PRUNE_EVERY_S

    async def start(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._prune_loop()))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def bind(self, key: KeyRecord, route: Any, creq: CanonicalRequest) -> None:
        await self.binder.bind(key, route, creq)

    async def prune(self) -> None:
        removed = await self.files.prune()
        if removed:
            log.info("removed %d expired files and abandoned uploads", removed)

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("pruning expired resources failed", exc_info=True)
            await asyncio.sleep(self.prune_every_s)

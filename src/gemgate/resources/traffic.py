"""Interactive traffic in flight in this process, so background work can give way to it.

The app counts every model call a client makes (:meth:`Traffic.request`); the batch
worker starts an item only when none is in flight (:meth:`Traffic.idle`), so at most the
items it already runs stand between a client and a free channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class Traffic:
    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextmanager
    def request(self) -> Iterator[None]:
        self.active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    async def idle(self) -> None:
        """Return once no interactive request is in flight."""
        while self.active:
            await self._idle.wait()

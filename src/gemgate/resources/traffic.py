"""Interactive traffic in flight in this process, so background work can give way to it.

The app counts every model call a client makes (:meth:`Traffic.request`); the batch
worker starts an item only when none is in flight (:meth:`Traffic.idle`), so at most the
items it already runs stand between a client and a free channel.
"""

from __future__ import annotations

import asyncio


class Traffic:
    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def request(self) -> Traffic:
        """A context manager counting one request in flight (the tracker itself: no
        object per request)."""
        return self

    def __enter__(self) -> None:
        self.active += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def idle(self) -> None:
        """Return once no interactive request is in flight."""
        while self.active:
            await self._idle.wait()

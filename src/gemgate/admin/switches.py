"""Operator switches: channels and upstream keys turned off, applied to this replica.

The states live in the database (:mod:`gemgate.store.channel_states`); a task polls the
``channels`` change counter every :data:`POLL_S` and, when it moves, sets
``Channel.enabled`` and ``UpstreamKey.disabled`` on the router's channels, so every
replica follows a change within a second and the request path reads only memory. A
channel label names a provider and its upstream model, so turning it off takes it out of
every model it serves; an upstream key is one key of a provider's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import Engine

from gemgate.pipeline.route import Router
from gemgate.store import channel_states as store
from gemgate.store.channel_states import Disabled

log = logging.getLogger("gemgate.admin")

POLL_S = 0.25


def apply(router: Router, disabled: Disabled) -> None:
    for _route, channel in router.channels():
        channel.enabled = channel.label not in disabled.channels
        if channel.keys is not None:
            for key in channel.keys.keys:
                key.disabled = (channel.provider_name, key.label) in disabled.keys


class Switches:
    def __init__(self, engine: Engine, router: Router, poll_s: float = POLL_S) -> None:
        self._engine = engine
        self._router = router
        self._poll_s = poll_s
        self._generation = -1
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.refresh(force=True)
        self._task = asyncio.create_task(self._poll(), name="gemgate-switch-poll")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            gen = await asyncio.to_thread(store.channels_generation, self._engine)
            if gen == self._generation and not force:
                return
            gen, disabled = await asyncio.to_thread(store.load_disabled, self._engine)
            apply(self._router, disabled)
            self._generation = gen

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.refresh()
            except Exception:  # the database may be briefly unavailable; keep serving
                log.warning("channel switch refresh failed", exc_info=True)

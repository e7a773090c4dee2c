"""Authentication: find the caller's key without touching the database.

Keys live in an in-memory map from hash to record, loaded at start and reloaded whenever
the database's ``keys`` change counter moves (the CLI bumps it on create, revoke and
top-up). A background task polls that counter; an unknown key also triggers one
(rate-limited) check, so a key created a moment ago works on its first request.

A reload hands the fresh records to the budgets (``on_reload``), in two steps around the
database read: ``begin_load()`` before it, ``load(records, mark)`` after it, so that costs
settled while the read ran are not lost (see :mod:`gemgate.limits.memory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import Engine

from gemgate.errors import ApiKeyInvalid, PermissionDenied
from gemgate.store import keys as key_store
from gemgate.store.keys import KeyRecord, hash_key

log = logging.getLogger("gemgate.auth")

NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


def extract_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key from ``x-goog-api-key``, ``?key=`` or ``Authorization: Bearer``."""
    key = headers.get("x-goog-api-key")
    if key is None:
        key = query.get("key")
    if key is None:
        auth = headers.get("authorization")
        if auth is not None:
            scheme, _, value = auth.strip().partition(" ")
            if scheme.lower() == "bearer":
                key = value
    if key is None:
        return None
    return key.strip() or None


class ReloadListener(Protocol):
    async def begin_load(self) -> Any: ...

    async def load(self, keys: Mapping[str, KeyRecord], marks: Any = None) -> None: ...


class KeyCache:
    def __init__(
        self,
        engine: Engine,
        poll_interval: float = 0.25,
        on_reload: ReloadListener | None = None,
    ) -> None:
        self._engine = engine
        self._poll_interval = poll_interval
        self._by_hash: dict[str, KeyRecord] = {}
        self._generation = -1
        self._last_check = 0.0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._on_reload = on_reload

    @property
    def records(self) -> dict[str, KeyRecord]:
        return self._by_hash

    def _load(self) -> tuple[int, dict[str, KeyRecord]]:
        gen = key_store.generation(self._engine)
        return gen, {k.key_hash: k for k in key_store.list_keys(self._engine)}

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            self._last_check = time.monotonic()
            gen = await asyncio.to_thread(key_store.generation, self._engine)
            if gen == self._generation and not force:
                return
            marks = await self._on_reload.begin_load() if self._on_reload is not None else None
            gen, by_hash = await asyncio.to_thread(self._load)
            self._by_hash = by_hash  # revocations apply even if the budgets cannot load
            if self._on_reload is not None:
                await self._on_reload.load(by_hash, marks)
            self._generation = gen  # only now: a failed budget load is retried

    async def start(self) -> None:
        await self.refresh(force=True)
        self._task = asyncio.create_task(self._poll(), name="gemgate-key-poll")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                await self.refresh()
            except Exception:  # the database may be briefly unavailable; keep serving
                log.warning("key refresh failed", exc_info=True)

    async def authenticate(self, plain: str | None) -> KeyRecord:
        if plain is None:
            raise PermissionDenied(NO_KEY_MESSAGE, reason="API_KEY_MISSING")
        digest = hash_key(plain)
        record = self._by_hash.get(digest)
        if record is None:
            if self._lock.locked():
                # A reload is running (perhaps started by another request with this new
                # key): wait for it rather than refusing the key meanwhile.
                async with self._lock:
                    pass
            elif time.monotonic() - self._last_check > 0.05:
                await self.refresh()
            record = self._by_hash.get(digest)
        if record is None:
            raise ApiKeyInvalid()
        return record

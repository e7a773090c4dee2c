"""Copies of gateway files in upstream projects.

A Google channel reads a file only from its own project: the first request naming one of
ours on that channel uploads it there (streamed from the content store) and the copy's
upstream name and URI are kept per *holder*, ``{provider}/{upstream key label}`` (each key
may be a project of its own), until the copy expires; a copy about to expire is uploaded
again. A file still PROCESSING upstream (video) is waited for.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from gemgate.errors import BadGateway, DeadlineExceeded
from gemgate.providers.gemini import GeminiProvider
from gemgate.providers.gemini_resources import GeminiResources
from gemgate.resources import names
from gemgate.resources.files import FileService
from gemgate.store import files_sql
from gemgate.store.files_sql import FileCopy, FileRow

log = logging.getLogger("gemgate.copies")

#: A copy expiring sooner than this is not used (a long request could outlive it).
MARGIN = timedelta(hours=1)
UPSTREAM_TTL = timedelta(hours=48)
PROCESSING_WAIT_S = 300.0


def holder_of(channel: Any, key: Any) -> str:
    return f"{channel.provider_name}/{key.label if key is not None else '-'}"


def credential_of(key: Any) -> str | None:
    return key.secret if key is not None else None


class Upstreams:
    """One resource client per Google provider."""

    def __init__(self) -> None:
        self._clients: dict[int, GeminiResources] = {}

    def client(self, provider: GeminiProvider) -> GeminiResources:
        found = self._clients.get(id(provider))
        if found is None:
            found = self._clients[id(provider)] = GeminiResources(provider)
        return found


def find_holder(router: Any, label: str, holder: str) -> tuple[Any, Any] | None:
    """The configured (channel, upstream key) a copy on ``label`` by ``holder`` was made
    with; None when it is no longer configured."""
    for _route, channel in router.channels():
        if channel.label != label:
            continue
        for key in channel.keys.keys if channel.keys is not None else [None]:
            if holder_of(channel, key) == holder:
                return channel, key
    return None


def first_key(channel: Any) -> Any:
    """The upstream key a resource call on ``channel`` uses (None: it needs none)."""
    if channel.keys is None or not len(channel.keys):
        return None
    usable = channel.keys.in_turn()
    return usable[0] if usable else channel.keys.keys[0]


def speaks_resources(channel: Any) -> bool:
    """Whether the channel's upstream keeps files and caches of its own (Google's API)."""
    return isinstance(channel.provider, GeminiProvider)


class FileCopies:
    def __init__(self, files: FileService, upstreams: Upstreams) -> None:
        self.files = files
        self.upstreams = upstreams
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def uri(self, channel: Any, key: Any, row: FileRow) -> str:
        """The URI of the file's copy on ``channel`` (uploaded there when it has none)."""
        holder = holder_of(channel, key)
        copy = await asyncio.to_thread(files_sql.copy_of, self.files.engine, row.id, holder)
        if copy is not None and names.aware(copy.expires_at) - MARGIN > names.now():
            return copy.upstream_uri
        lock = self._locks.setdefault((row.id, holder), asyncio.Lock())
        async with lock:
            copy = await asyncio.to_thread(files_sql.copy_of, self.files.engine, row.id, holder)
            if copy is None or names.aware(copy.expires_at) - MARGIN <= names.now():
                copy = await self._upload(channel, key, row)
                await asyncio.to_thread(files_sql.save_copy, self.files.engine, row.id, holder, copy)
        self._locks.pop((row.id, holder), None)
        return copy.upstream_uri

    async def _upload(self, channel: Any, key: Any, row: FileRow) -> FileCopy:
        client = self.upstreams.client(channel.provider)
        credential = credential_of(key)
        log.info("copying files/%s (%d bytes) to %s", row.id, row.size_bytes, holder_of(channel, key))
        meta = await client.upload(
            credential,
            display_name=row.display_name,
            mime_type=row.mime_type,
            size=row.size_bytes,
            content=self.files.content(row.id),
        )
        waited = 0.0
        while meta.get("state") == "PROCESSING":
            if waited >= PROCESSING_WAIT_S:
                raise DeadlineExceeded(f"Upstream '{client.name}' is still processing files/{row.id}.")
            await asyncio.sleep(1.0)
            waited += 1.0
            meta = await client.get_file(credential, str(meta.get("name")))
        if meta.get("state") == "FAILED" or not meta.get("uri") or not meta.get("name"):
            raise BadGateway(f"Upstream '{client.name}' could not take files/{row.id}.")
        expires = names.now() + UPSTREAM_TTL
        if isinstance(meta.get("expirationTime"), str):
            try:
                expires = names.parse_timestamp(meta["expirationTime"], "expirationTime")
            except Exception:
                log.debug("upstream expiration time unreadable: %r", meta.get("expirationTime"))
        return FileCopy(str(meta["name"]), str(meta["uri"]), expires)

    async def forget(self, router: Any, copies: list[tuple[str, str]]) -> None:
        """Delete the upstream copies of a file that is gone (best effort: they expire
        anyway). ``copies``: (holder, upstream name) of each."""
        for holder, name in copies:
            provider = holder.split("/", 1)[0]
            for _route, channel in router.channels():
                if channel.provider_name != provider or not speaks_resources(channel):
                    continue
                keys = channel.keys.keys if channel.keys is not None else [None]
                key = next((k for k in keys if holder_of(channel, k) == holder), None)
                if key is None and keys != [None]:
                    continue
                try:
                    await self.upstreams.client(channel.provider).delete(credential_of(key), name)
                except Exception as exc:
                    log.info("could not delete upstream copy %s on %s: %s", name, holder, exc)
                break

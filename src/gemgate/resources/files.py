"""Files: uploads (resumable or in one request), their owners, expiry and quota.

A file belongs to the key that started its upload; every read filters on that key, so
another key's file is "not found". An upload is named by its upload id, the credential
for its chunks; a chunk is written from the offset the client names, which must be where
the stored bytes end, and an interrupted upload resumes from there (``query`` answers
it). An upload left unfinished expires after :data:`UPLOAD_TTL`; a file after
``[files] ttl_hours`` (48 h, as Google's do). A key's live files (uploads in progress at
their declared size) may take at most ``[files] quota_mb``.

The SHA-256 of the bytes is computed as they stream in when the whole upload arrives in
this process, else by reading the stored bytes back once the upload completes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gemgate.errors import InvalidArgument, NotFound, ResourceExhausted
from gemgate.resources import names
from gemgate.resources.content import ContentStore
from gemgate.resources.file_tokens import measure
from gemgate.settings import FilesSettings
from gemgate.store import files_sql
from gemgate.store.files_sql import ACTIVE, UPLOADING, FileRow
from gemgate.store.keys import KeyRecord
from gemgate.tokens import Reference, TokenCounter

log = logging.getLogger("gemgate.files")

UPLOAD_TTL = timedelta(hours=24)
MB = 1024 * 1024


@dataclass(slots=True)
class Upload:
    """Where an upload stands: the bytes received, and the file once it is complete."""

    row: FileRow
    received: int
    done: bool


class _Hashing:
    """The running SHA-256 of an upload received in order by this process."""

    __slots__ = ("hasher", "offset")

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.offset = 0


class FileService:
    def __init__(
        self, engine: Any, store: ContentStore, counter: TokenCounter, settings: FilesSettings
    ) -> None:
        self.engine = engine
        self.store = store
        self.counter = counter
        self.settings = settings
        self.ttl = timedelta(hours=settings.ttl_hours)
        self._hashing: dict[str, _Hashing] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Told the upstream copies of a file that is gone: [(holder, upstream name)].
        self.on_forget: Callable[[list[tuple[str, str]]], None] | None = None

    async def _db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, self.engine, *args)

    # --- starting ------------------------------------------------------------------------

    async def start(
        self,
        key: KeyRecord,
        *,
        display_name: str | None,
        mime_type: str,
        size: int,
        source: str = "UPLOADED",
    ) -> tuple[FileRow, str]:
        """A new upload of ``size`` bytes; the file (UPLOADING) and its upload id."""
        limit = self.settings.max_file_mb * MB
        if size > limit:
            raise InvalidArgument.field(
                "file.sizeBytes", f"{size} bytes is more than the {limit} bytes a file may have"
            )
        at = names.now()
        used = await self._db(files_sql.stored_bytes, key.id, at)
        quota = self.settings.quota_mb * MB
        if used + size > quota and source != "GENERATED":  # a batch's results are kept regardless
            raise ResourceExhausted.quota(
                f"storage:{key.name}",
                f"API key '{key.name}' may store {quota} bytes of files; {used} are in use "
                f"and this file has {size}.",
                reason="STORAGE_QUOTA_EXCEEDED",
            )
        upload_id = names.new_upload_id()
        values = {
            "id": names.new_id(),
            "key_id": key.id,
            "display_name": display_name,
            "mime_type": mime_type,
            "size_bytes": size,
            "received_bytes": 0,
            "state": UPLOADING,
            "source": source,
            "upload_hash": names.upload_hash(upload_id),
            "upload_expires_at": at + UPLOAD_TTL,
            "created_at": at,
            "updated_at": at,
            "expires_at": at + self.ttl,
        }
        await self._db(files_sql.create, values)
        row = await self._db(files_sql.owned, key.id, values["id"], at)
        assert row is not None
        self._hashing[row.id] = _Hashing()
        return row, upload_id

    # --- chunks --------------------------------------------------------------------------

    async def upload(self, upload_id: str, key: KeyRecord | None = None) -> FileRow:
        """The upload this id names (and, when the caller sent a key, that key's)."""
        row = await self._db(files_sql.by_upload, names.upload_hash(upload_id))
        at = names.now()
        if (
            row is None
            or (key is not None and row.key_id != key.id)
            or (row.upload_expires_at is not None and names.aware(row.upload_expires_at) <= at)
        ):
            raise NotFound("No upload with this id is in progress (it may have expired).")
        return row

    async def query(self, upload_id: str, key: KeyRecord | None = None) -> Upload:
        row = await self.upload(upload_id, key)
        return Upload(row, await self.store.size(row.id), False)

    async def receive(
        self,
        upload_id: str,
        key: KeyRecord | None,
        *,
        offset: int,
        length: int | None,
        pieces: AsyncIterator[bytes],
        finalize: bool,
        exact: bool = True,
    ) -> Upload:
        """Write one chunk of an upload at ``offset`` (and, with ``finalize``, complete it;
        unless ``exact``, the declared size was only an upper bound)."""
        row = await self.upload(upload_id, key)
        lock = self._locks.setdefault(row.id, asyncio.Lock())
        async with lock:  # one chunk of an upload at a time in this process
            done = await self._receive(row, offset, length, pieces, finalize, exact)
        if done.done:
            self._locks.pop(row.id, None)
        return done

    async def _receive(
        self,
        row: FileRow,
        offset: int,
        length: int | None,
        pieces: AsyncIterator[bytes],
        finalize: bool,
        exact: bool,
    ) -> Upload:
        stored = await self.store.size(row.id)
        if offset != stored:
            raise InvalidArgument.field(
                "X-Goog-Upload-Offset", f"the upload has {stored} bytes; the next chunk starts there, not at {offset}"
            )
        if length is not None and offset + length > row.size_bytes:
            raise InvalidArgument.field(
                "X-Goog-Upload-Offset",
                f"this chunk would end at byte {offset + length}, beyond the declared size {row.size_bytes}",
            )
        hashing = self._hashing.get(row.id)
        if hashing is not None and hashing.offset != offset:
            self._hashing.pop(row.id, None)
            hashing = None
        capped = _capped(pieces, row.size_bytes - offset, hashing)
        try:
            received = await self.store.append(row.id, offset, capped)
        except BaseException:
            self._hashing.pop(row.id, None)  # what was kept is unknown to the hasher
            with_size = await self.store.size(row.id)
            await self._db(files_sql.set_received, row.id, with_size, names.now())
            raise
        await self._db(files_sql.set_received, row.id, received, names.now())
        if not finalize:
            return Upload(row, received, False)
        if exact and received != row.size_bytes:
            raise InvalidArgument.field(
                "X-Goog-Upload-Command",
                f"finalize after {received} bytes, but the upload declared {row.size_bytes}",
            )
        return Upload(await self._complete(row, received), received, True)

    async def _complete(self, row: FileRow, size: int) -> FileRow:
        hashing = self._hashing.pop(row.id, None)
        if hashing is not None and hashing.offset == size:
            digest = hashing.hasher.hexdigest()
        else:
            digest = await self._rehash(row.id)
        ref = await measure(self.store, self.counter, row.id, row.mime_type, size)
        at = names.now()
        values = {
            "sha256": digest,
            "state": ACTIVE,
            "size_bytes": size,
            "received_bytes": size,
            "modality": ref.modality,
            "tokens": ref.tokens,
            "token_bound": ref.bound,
            "updated_at": at,
        }
        await self._db(files_sql.finish, row.id, values)
        done = await self._db(files_sql.owned, row.key_id, row.id, at)
        if done is None:
            raise NotFound(f"File files/{row.id} is gone.")
        return done

    async def _rehash(self, file_id: str) -> str:
        hasher = hashlib.sha256()
        async for block in self.store.read(file_id):
            await asyncio.to_thread(hasher.update, block)
        return hasher.hexdigest()

    async def cancel(self, upload_id: str, key: KeyRecord | None) -> None:
        row = await self.upload(upload_id, key)
        await self._forget(row.key_id, row.id)

    async def create(
        self,
        key: KeyRecord,
        *,
        display_name: str | None,
        mime_type: str,
        size: int,
        pieces: AsyncIterator[bytes],
        source: str = "UPLOADED",
        exact: bool = True,
    ) -> FileRow:
        """A whole file in one go (multipart and media uploads; generated files). Unless
        ``exact``, ``size`` only bounds it (for the quota) and the bytes that come decide."""
        row, upload_id = await self.start(
            key, display_name=display_name, mime_type=mime_type, size=size, source=source
        )
        try:
            done = await self.receive(
                upload_id, key, offset=0, length=None, pieces=pieces, finalize=True, exact=exact
            )
        except BaseException:
            await asyncio.shield(self._forget(key.id, row.id))
            raise
        return done.row

    # --- reads ---------------------------------------------------------------------------

    async def get(self, key: KeyRecord, file_id: str) -> FileRow:
        row = await self._db(files_sql.owned, key.id, file_id, names.now())
        if row is None or row.state == UPLOADING:
            raise NotFound(f"File files/{file_id} is not found.", metadata={"file": file_id})
        return row

    async def page(
        self, key: KeyRecord, size: int, after: tuple[Any, str] | None
    ) -> tuple[list[FileRow], bool]:
        rows = await self._db(files_sql.page, key.id, names.now(), size, after)
        return rows[:size], len(rows) > size

    async def delete(self, key: KeyRecord, file_id: str) -> None:
        await self.get(key, file_id)
        await self._forget(key.id, file_id)

    async def _forget(self, key_id: int, file_id: str) -> None:
        self._hashing.pop(file_id, None)
        self._locks.pop(file_id, None)
        copies = await self._db(files_sql.copies, file_id)
        if await self._db(files_sql.remove, key_id, file_id):
            await self.store.delete(file_id)
            if copies and self.on_forget is not None:
                self.on_forget(copies)

    def content(self, file_id: str) -> AsyncIterator[bytes]:
        return self.store.read(file_id)

    async def referenced(self, key: KeyRecord, ids: list[str]) -> dict[str, FileRow]:
        """The key's active files among ``ids`` (others' and expired ones are absent)."""
        if not ids:
            return {}
        return await self._db(files_sql.owned_many, key.id, ids, names.now())

    # --- expiry --------------------------------------------------------------------------

    async def prune(self) -> int:
        """Delete expired files and abandoned uploads (and their bytes); how many."""
        gone = await self._db(files_sql.expired, names.now())
        for file_id in gone:
            copies = await self._db(files_sql.copies, file_id)
            await self.store.delete(file_id)
            await self._db(files_sql.purge, file_id)
            if copies and self.on_forget is not None:
                self.on_forget(copies)
            self._hashing.pop(file_id, None)
            self._locks.pop(file_id, None)
        return len(gone)


def reference(row: FileRow) -> Reference:
    return Reference(row.modality or "DOCUMENT", row.tokens or 0, row.token_bound or 0)


async def _capped(
    pieces: AsyncIterator[bytes], room: int, hashing: _Hashing | None
) -> AsyncIterator[bytes]:
    """The pieces, refusing any byte beyond the upload's declared size; hashed on the way."""
    async for piece in pieces:
        room -= len(piece)
        if room < 0:
            raise InvalidArgument("The upload sent more bytes than its declared size.")
        if hashing is not None:
            hashing.hasher.update(piece)
            hashing.offset += len(piece)
        yield piece

"""Content stores: where the bytes of uploaded files live.

An upload arrives as a stream of ASGI body messages (tens of KiB each); a store takes them
as they come and holds at most one piece in memory (:data:`PIECE`), so a 2 GB upload costs
what a 2 KB one does. Every blocking call (file IO, database IO) runs in a worker thread.

* :class:`LocalStore` — a directory (``[files] dir``) on this machine: one replica.
* :class:`DatabaseStore` — pieces in the ``file_chunks`` table, which every replica
  reaches (``[files] store = "database"``, meant for PostgreSQL).

The bytes a store holds are the truth about how much of an upload has arrived: a write
starts where the stored bytes end, so an upload broken off mid-chunk resumes from what was
kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import Engine

from gemgate.store import content_sql

#: Bytes gathered before one write (and the most a write holds in memory).
PIECE = 1 << 20
#: Bytes per read when a file is streamed out.
READ = 1 << 20


class ContentStore(Protocol):
    async def size(self, file_id: str) -> int: ...

    async def append(self, file_id: str, offset: int, pieces: AsyncIterator[bytes]) -> int:
        """Write ``pieces`` from ``offset`` (dropping anything stored beyond it); the size
        stored when the pieces end or the iterator fails (what arrived is kept)."""
        ...

    def read(self, file_id: str, start: int = 0) -> AsyncIterator[bytes]: ...

    async def delete(self, file_id: str) -> None: ...


async def _gathered(pieces: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """The pieces regrouped into blocks of about ``size`` bytes (one block held at a time)."""
    block = bytearray()
    async for piece in pieces:
        block += piece
        if len(block) >= size:
            yield bytes(block)
            block.clear()
    if block:
        yield bytes(block)


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, file_id: str) -> Path:
        return self.root / file_id[:2] / file_id

    async def size(self, file_id: str) -> int:
        def stat() -> int:
            try:
                return self.path(file_id).stat().st_size
            except FileNotFoundError:
                return 0

        return await asyncio.to_thread(stat)

    async def append(self, file_id: str, offset: int, pieces: AsyncIterator[bytes]) -> int:
        path = self.path(file_id)

        def open_at() -> BinaryIO:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115 - closed below
            handle.truncate(offset)
            handle.seek(offset)
            return handle

        handle = await asyncio.to_thread(open_at)
        try:
            async for block in _gathered(pieces, PIECE):
                await asyncio.to_thread(handle.write, block)
        finally:

            def finish() -> int:
                handle.flush()
                os.fsync(handle.fileno())
                end = handle.tell()
                handle.close()
                return end

            end = await asyncio.shield(asyncio.to_thread(finish))
        return end

    async def read(self, file_id: str, start: int = 0) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self.path(file_id), "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            while True:
                block = await asyncio.to_thread(handle.read, READ)
                if not block:
                    return
                yield block
        finally:
            await asyncio.to_thread(handle.close)

    async def delete(self, file_id: str) -> None:
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.path(file_id).unlink()

        await asyncio.to_thread(remove)


class DatabaseStore:
    """Pieces of up to :data:`PIECE_DB` bytes, one row each, keyed by their byte offset."""

    PIECE_DB = 4 << 20

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def size(self, file_id: str) -> int:
        return await asyncio.to_thread(content_sql.stored_size, self._engine, file_id)

    async def append(self, file_id: str, offset: int, pieces: AsyncIterator[bytes]) -> int:
        await asyncio.to_thread(content_sql.truncate, self._engine, file_id, offset)
        end = offset
        async for block in _gathered(pieces, self.PIECE_DB):
            await asyncio.shield(
                asyncio.to_thread(content_sql.add_piece, self._engine, file_id, end, block)
            )
            end += len(block)
        return end

    async def read(self, file_id: str, start: int = 0) -> AsyncIterator[bytes]:
        pos = start
        while True:
            found = await asyncio.to_thread(
                content_sql.piece_at_or_after, self._engine, file_id, pos
            )
            if found is None:
                return
            piece_start, data = found
            block = data[pos - piece_start :] if pos > piece_start else data
            pos = piece_start + len(data)
            yield block

    async def delete(self, file_id: str) -> None:
        await asyncio.to_thread(content_sql.delete_all, self._engine, file_id)

"""Queries on files and their upstream copies (blocking calls: run them in a worker thread).

Reads by owner filter on ``key_id`` in SQL, so another key's file is never even loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update

from gemgate.store.resource_tables import file_copies, gemini_files

UPLOADING, ACTIVE, FAILED = "UPLOADING", "ACTIVE", "FAILED"


@dataclass(frozen=True, slots=True)
class FileRow:
    id: str
    key_id: int
    display_name: str | None
    mime_type: str
    size_bytes: int
    received_bytes: int
    sha256: str | None
    state: str
    source: str
    modality: str | None
    tokens: int | None
    token_bound: int | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    upload_expires_at: datetime | None = None


_COLUMNS = [c for c in gemini_files.columns if c.name != "upload_hash"]


def _row(r: Any) -> FileRow:
    return FileRow(**{c.name: getattr(r, c.name) for c in _COLUMNS})


def create(engine: Engine, values: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(gemini_files).values(**values))


def by_upload(engine: Engine, upload_hash: str) -> FileRow | None:
    with engine.connect() as conn:
        r = conn.execute(
            select(*_COLUMNS).where(gemini_files.c.upload_hash == upload_hash)
        ).first()
    return _row(r) if r is not None else None


def owned(engine: Engine, key_id: int, file_id: str, at: datetime) -> FileRow | None:
    """The key's file (any state), unless it has expired."""
    with engine.connect() as conn:
        r = conn.execute(
            select(*_COLUMNS).where(
                gemini_files.c.id == file_id,
                gemini_files.c.key_id == key_id,
                gemini_files.c.expires_at > at,
            )
        ).first()
    return _row(r) if r is not None else None


def owned_many(engine: Engine, key_id: int, ids: list[str], at: datetime) -> dict[str, FileRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_COLUMNS).where(
                gemini_files.c.id.in_(ids),
                gemini_files.c.key_id == key_id,
                gemini_files.c.state == ACTIVE,
                gemini_files.c.expires_at > at,
            )
        ).all()
    return {r.id: _row(r) for r in rows}


def page(
    engine: Engine, key_id: int, at: datetime, size: int, after: tuple[datetime, str] | None
) -> list[FileRow]:
    """The key's files newest first, ``size`` + 1 of them (the extra one says there is more)."""
    c = gemini_files.c
    cond = [c.key_id == key_id, c.expires_at > at, c.state != UPLOADING]
    if after is not None:
        when, last = after
        cond.append(or_(c.created_at < when, and_(c.created_at == when, c.id < last)))
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_COLUMNS).where(*cond).order_by(c.created_at.desc(), c.id.desc()).limit(size + 1)
        ).all()
    return [_row(r) for r in rows]


def stored_bytes(engine: Engine, key_id: int, at: datetime) -> int:
    """What the key's live files take (uploads in progress count at their declared size)."""
    c = gemini_files.c
    with engine.connect() as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(c.size_bytes), 0)).where(
                c.key_id == key_id, c.expires_at > at, c.state != FAILED
            )
        ).scalar_one()
    return int(total)


def set_received(engine: Engine, file_id: str, received: int, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(gemini_files)
            .where(gemini_files.c.id == file_id)
            .values(received_bytes=received, updated_at=at)
        )


def finish(engine: Engine, file_id: str, values: dict[str, Any]) -> bool:
    """Mark an upload complete (once: False when it already was, or is gone)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(gemini_files)
            .where(gemini_files.c.id == file_id, gemini_files.c.state == UPLOADING)
            .values(**values, upload_hash=None, upload_expires_at=None)
        )
    return bool(done.rowcount)


def remove(engine: Engine, key_id: int, file_id: str) -> bool:
    with engine.begin() as conn:
        gone = conn.execute(
            delete(gemini_files).where(gemini_files.c.id == file_id, gemini_files.c.key_id == key_id)
        )
        if gone.rowcount:
            conn.execute(delete(file_copies).where(file_copies.c.file_id == file_id))
    return bool(gone.rowcount)


def expired(engine: Engine, at: datetime, limit: int = 500) -> list[str]:
    """Files past their expiry, and uploads abandoned past theirs."""
    c = gemini_files.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.id)
            .where(or_(c.expires_at <= at, and_(c.state == UPLOADING, c.upload_expires_at <= at)))
            .limit(limit)
        ).all()
    return [r.id for r in rows]


def purge(engine: Engine, file_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(gemini_files).where(gemini_files.c.id == file_id))
        conn.execute(delete(file_copies).where(file_copies.c.file_id == file_id))


# --- upstream copies --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileCopy:
    upstream_name: str
    upstream_uri: str
    expires_at: datetime


def copy_of(engine: Engine, file_id: str, holder: str) -> FileCopy | None:
    c = file_copies.c
    with engine.connect() as conn:
        r = conn.execute(
            select(c.upstream_name, c.upstream_uri, c.expires_at).where(
                c.file_id == file_id, c.holder == holder
            )
        ).first()
    return FileCopy(r.upstream_name, r.upstream_uri, r.expires_at) if r is not None else None


def save_copy(engine: Engine, file_id: str, holder: str, copy: FileCopy) -> None:
    with engine.begin() as conn:
        conn.execute(
            delete(file_copies).where(file_copies.c.file_id == file_id, file_copies.c.holder == holder)
        )
        conn.execute(
            insert(file_copies).values(
                file_id=file_id,
                holder=holder,
                upstream_name=copy.upstream_name,
                upstream_uri=copy.upstream_uri,
                expires_at=copy.expires_at,
            )
        )


def copies(engine: Engine, file_id: str) -> list[tuple[str, str]]:
    """(holder, upstream name) of every copy of the file."""
    c = file_copies.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.holder, c.upstream_name).where(c.file_id == file_id)).all()
    return [(r.holder, r.upstream_name) for r in rows]

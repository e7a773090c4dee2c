"""The bytes of files kept in the database, as pieces of at most a few MiB (blocking calls:
run them in a worker thread)."""

from __future__ import annotations

from sqlalchemy import Engine, delete, func, insert, select

from gemgate.store.resource_tables import file_chunks


def stored_size(engine: Engine, file_id: str) -> int:
    with engine.connect() as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(func.length(file_chunks.c.data)), 0)).where(
                file_chunks.c.file_id == file_id
            )
        ).scalar_one()
    return int(total)


def truncate(engine: Engine, file_id: str, size: int) -> None:
    """Drop the pieces starting at or after ``size`` (pieces never straddle it: every write
    starts where the stored bytes end)."""
    with engine.begin() as conn:
        conn.execute(
            delete(file_chunks).where(file_chunks.c.file_id == file_id, file_chunks.c.start >= size)
        )


def add_piece(engine: Engine, file_id: str, start: int, data: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(insert(file_chunks).values(file_id=file_id, start=start, data=data))


def piece_at_or_after(engine: Engine, file_id: str, start: int) -> tuple[int, bytes] | None:
    """The first piece whose end lies beyond ``start``: the one holding that byte."""
    with engine.connect() as conn:
        row = conn.execute(
            select(file_chunks.c.start, file_chunks.c.data)
            .where(file_chunks.c.file_id == file_id, file_chunks.c.start <= start)
            .order_by(file_chunks.c.start.desc())
            .limit(1)
        ).first()
        if row is not None and row.start + len(row.data) > start:
            return int(row.start), bytes(row.data)
        row = conn.execute(
            select(file_chunks.c.start, file_chunks.c.data)
            .where(file_chunks.c.file_id == file_id, file_chunks.c.start > start)
            .order_by(file_chunks.c.start)
            .limit(1)
        ).first()
    return (int(row.start), bytes(row.data)) if row is not None else None


def delete_all(engine: Engine, file_id: str) -> None:
    truncate(engine, file_id, 0)

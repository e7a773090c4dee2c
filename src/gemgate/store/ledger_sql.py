"""The ledger's two hot statements, compiled once for a dialect and run on a raw DB-API
connection.

A usage batch is one ``executemany`` of an insert that skips request ids already present,
plus one ``executemany`` adding costs to the keys' spent amounts. Going through SQLAlchemy's
execution layer for these would cost more than the database work itself; the statements
are still built from the Core tables and each value passes through its column type's own
bind processor, so what is stored is exactly what SQLAlchemy would store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from gemgate.store.tables import api_keys, usage_records

Params = Sequence[Any] | dict[str, Any]


def _sqlite_datetime(value: datetime) -> str:
    # What SQLAlchemy's SQLite DATETIME stores (the clock fields, zone dropped), made by
    # one C call instead of a formatted dict.
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class _Compiled:
    def __init__(self, stmt: Any, dialect: Dialect, processors: Mapping[str, Any]) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.order: list[str] = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self._pairs = [(name, processors.get(name)) for name in self.order]

    def params(self, values: dict[str, Any]) -> Params:
        out = [
            value if processor is None or value is None else processor(value)
            for name, processor in self._pairs
            for value in (values.get(name),)  # a column the record leaves out is NULL
        ]
        return out if self.positional else dict(zip(self.order, out, strict=True))


def _processor(column_type: Any, dialect: Dialect) -> Any:
    impl = column_type.dialect_impl(dialect)
    if isinstance(impl, sqlite.DATETIME) and dialect.name == "sqlite":
        return _sqlite_datetime
    return impl.bind_processor(dialect)


class LedgerStatements:
    def __init__(self, dialect: Dialect) -> None:
        columns = [c for c in usage_records.columns if c.name != "id"]
        processors = {c.name: _processor(c.type, dialect) for c in columns}
        values: dict[str, Any] = {c.name: bindparam(c.name) for c in columns}
        if dialect.name == "postgresql":
            ins: Any = postgresql.insert(usage_records).inline().values(values)
        else:
            ins = sqlite.insert(usage_records).inline().values(values)
        self.insert = _Compiled(
            ins.on_conflict_do_nothing(index_elements=["request_id"]), dialect, processors
        )
        add = (
            update(api_keys)
            .where(api_keys.c.id == bindparam("key_id_"))
            .values(spent_nanos=api_keys.c.spent_nanos + bindparam("nanos_"))
        )
        self.add_spent = _Compiled(add, dialect, {})

    def write(self, cursor: Any, records: list[dict[str, Any]]) -> int:
        """Insert the records (skipping known request ids) and add their costs to the keys,
        in the caller's transaction. Returns how many records were inserted."""
        cursor.executemany(self.insert.sql, [self.insert.params(r) for r in records])
        inserted = cursor.rowcount
        spent: dict[int, int] = {}
        for r in records:
            if r.get("key_id") is not None and r.get("cost_nanos"):
                spent[r["key_id"]] = spent.get(r["key_id"], 0) + r["cost_nanos"]
        if spent:
            # In key order, so replicas committing batches that touch the same keys lock the
            # rows in the same order and cannot deadlock each other.
            cursor.executemany(
                self.add_spent.sql,
                [self.add_spent.params({"key_id_": k, "nanos_": n}) for k, n in sorted(spent.items())],
            )
        return int(inserted)

"""The ledger's two hot statements, compiled once for a dialect and run on a raw DB-API
connection.

A usage batch is one ``executemany`` of an insert that skips request ids already present,
plus one ``executemany`` adding costs to the keys' spent amounts. Going through SQLAlchemy's
execution layer for these would cost more than the database work itself; the statements
are still built from the Core tables and each value passes through its column type's own
bind processor, so what is stored is exactly what SQLAlchemy would store.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Dialect, bindparam, update
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
        # Records name every column: one C call gathers them in order, and only the
        # columns whose type converts values (datetimes, booleans) are touched again.
        self._gather = operator.itemgetter(*self.order) if len(self.order) > 1 else None
        self._convert = [
            (i, processors[name]) for i, name in enumerate(self.order) if processors.get(name)
        ]

    def params(self, values: dict[str, Any]) -> Params:
        try:
            out = list(self._gather(values)) if self._gather is not None else [values[self.order[0]]]
        except KeyError:  # a column the record leaves out is NULL
            out = [values.get(name) for name in self.order]
        for i, processor in self._convert:
            if out[i] is not None:
                out[i] = processor(out[i])
        return out if self.positional else dict(zip(self.order, out, strict=True))


def _processor(column_type: Any, dialect: Dialect) -> Any:
    impl = column_type.dialect_impl(dialect)
    if dialect.name == "sqlite":
        if isinstance(impl, sqlite.DATETIME):
            return _sqlite_datetime
        if isinstance(impl, Boolean):
            return None  # sqlite3 stores a bool as the 0 or 1 SQLAlchemy would
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

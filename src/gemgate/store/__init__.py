"""Persistence: SQLAlchemy Core tables, queries and Alembic migrations. All SQL lives here."""

from gemgate.store.db import make_engine, migrate

__all__ = ["make_engine", "migrate"]

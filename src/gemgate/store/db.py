"""Engine construction and schema migration.

SQLite is opened in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so the CLI and
the server (and several server processes) can share one file. PostgreSQL URLs
(``postgresql://...``) are served by psycopg 3.
"""

from __future__ import annotations

import logging
import threading
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

log = logging.getLogger("gemgate.store")


def _normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    url = _normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("gemgate.store") / "migrations"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One migrator at a time when several replicas start together.
            conn.execute(text("SELECT pg_advisory_xact_lock(7246601)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class SqliteCheckpointer:
    """Moves SQLite's WAL checkpoints (which fsync) off the ledger's commit path.

    The ledger's connection turns automatic checkpointing off; this thread runs a PASSIVE
    checkpoint (it never blocks writers) every ``interval`` seconds on its own connection.
    """

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gemgate-checkpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._checkpoint()

    def _checkpoint(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:  # a busy or closing database; the next round will do it
            log.debug("checkpoint skipped", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._checkpoint()

"""Engine construction and schema migration.

SQLite is opened in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so the CLI and
the server (and several server processes) can share one file. PostgreSQL URLs
(``postgresql://...``) are served by psycopg 3.

No wait on PostgreSQL is unbounded, whether the server is down, unreachable (packets
dropped) or hung (it accepts and never answers):

* connecting gives up after :data:`CONNECT_TIMEOUT_S`, and so does waiting for a pooled
  connection;
* TCP keepalives and ``tcp_user_timeout`` notice a peer that vanished, idle or mid-write;
* the server cancels any statement after :data:`STATEMENT_TIMEOUT_MS`;
* a connection checked out of the pool for longer than :data:`HOLD_LIMIT_S` (a statement
  stuck on a server that stopped answering, which no server-side timeout can end) has its
  socket shut down by a :class:`Watchdog`, so the waiting call fails instead of hanging.

Settings given in the URL (``?connect_timeout=2``) take precedence over these defaults.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

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


CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
HOLD_LIMIT_S = STATEMENT_TIMEOUT_MS / 1000 + 5
_PG_CONNECT_DEFAULTS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # ms
}


def abort_connection(dbapi_conn: Any) -> bool:
    """Shut down a PostgreSQL connection's socket from any thread, so that a call blocked on
    it fails at once. True when there was a socket to shut down."""
    conn = getattr(dbapi_conn, "dbapi_connection", dbapi_conn)  # a pool wrapper, or psycopg's
    pgconn = getattr(conn, "pgconn", None)
    try:
        fd = int(pgconn.socket) if pgconn is not None else -1
    except Exception:  # closed already
        return False
    if fd < 0:
        return False
    # Shut down a duplicate of the descriptor: the socket is shared, and the original
    # descriptor stays owned (and closed) by the driver, so it is never reused under it.
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as dup:
        dup.shutdown(socket.SHUT_RDWR)
        return True
    return False


class Watchdog:
    """Shuts down connections that have been busy for longer than ``limit_s``.

    ``begin(conn)`` before a wait on the database and ``end(conn)`` after it; a thread looks
    every ``interval_s`` for any wait that outlived its limit and aborts its connection
    (see :func:`abort_connection`). Costs two dict operations per wait.
    """

    def __init__(self, limit_s: float, *, name: str, interval_s: float = 0.5) -> None:
        self.limit_s = limit_s
        self._name = name
        self._interval = interval_s
        self._busy: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.aborted = 0

    def begin(self, conn: Any) -> None:
        self._busy[id(conn)] = (time.monotonic(), conn)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()

    def end(self, conn: Any) -> None:
        self._busy.pop(id(conn), None)

    def busy_for(self, conn: Any) -> float:
        """How long ``conn`` has been busy (0 when it is not)."""
        entry = self._busy.get(id(conn))
        return time.monotonic() - entry[0] if entry is not None else 0.0

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            now = time.monotonic()
            for key, (since, conn) in list(self._busy.items()):
                if now - since > self.limit_s and self._busy.get(key, (None,))[0] == since:
                    self._busy.pop(key, None)
                    if abort_connection(conn):
                        self.aborted += 1
                        log.warning(
                            "a database call made no progress for %.0f s: its connection was shut down",
                            now - since,
                        )


def _pg_session(dbapi_conn: Any, _record: Any) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
        cur.execute(f"SET idle_in_transaction_session_timeout = {int(STATEMENT_TIMEOUT_MS) * 2}")
    dbapi_conn.commit()


def _pg_connect_args(url: Any) -> dict[str, Any]:
    return {k: v for k, v in _PG_CONNECT_DEFAULTS.items() if k not in url.query}


def connect_direct(engine: Engine) -> Any:
    """A DB-API connection of its own, outside the pool, with the engine's settings (for a
    writer that keeps its connection). Connecting to PostgreSQL is bounded by
    :data:`CONNECT_TIMEOUT_S`; a pooled connection is never handed out here, so no wait on
    a pooled connection's health check can hold the caller."""
    if engine.dialect.name != "postgresql":
        raw = engine.raw_connection()
        raw.detach()  # its settings are the caller's own: never back into the pool
        return raw
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    cparams.update(_pg_connect_args(engine.url))
    conn = engine.dialect.connect(*cargs, **cparams)
    try:
        _pg_session(conn, None)
    except BaseException:
        with contextlib.suppress(Exception):
            conn.close()
        raise
    return conn


def make_engine(url: str) -> Engine:
    url = _normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = _pg_connect_args(make_url(url))
    engine = create_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_timeout=CONNECT_TIMEOUT_S * 2,
        connect_args=connect_args,
    )
    event.listen(engine, "connect", _pg_session)
    watchdog = Watchdog(HOLD_LIMIT_S, name="gemgate-db-watchdog")

    def checkout(conn: Any, _record: Any, _proxy: Any) -> None:
        # The pool's own pre-ping would run before this hook, unwatched: ping here instead.
        watchdog.begin(conn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        except Exception as exc:
            watchdog.end(conn)
            raise DisconnectionError(f"connection failed its ping: {exc}") from exc

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", lambda conn, _rec: watchdog.end(conn))
    event.listen(engine, "detach", lambda conn, _rec: watchdog.end(conn))
    event.listen(engine, "close", lambda conn, _rec: watchdog.end(conn))
    return engine


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

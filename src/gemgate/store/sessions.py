"""Console sessions, kept server-side so that every replica and worker knows them.

The browser holds a random token in an HttpOnly cookie; the table holds only its SHA-256,
the session's CSRF token and its expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select

from gemgate.store.tables import admin_sessions


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    expires_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(engine: Engine, lifetime: timedelta) -> tuple[str, Session]:
    """A new session: its cookie token (shown only now) and its record."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = Session(csrf=secrets.token_urlsafe(32), expires_at=now + lifetime)
    with engine.begin() as conn:
        conn.execute(
            insert(admin_sessions).values(
                token_hash=_hash(token), csrf=session.csrf, created_at=now,
                expires_at=session.expires_at,
            )
        )
    return token, session


def find(engine: Engine, token: str) -> Session | None:
    """The session the token opens, unless it has expired."""
    with engine.connect() as conn:
        row = conn.execute(
            select(admin_sessions.c.csrf, admin_sessions.c.expires_at).where(
                admin_sessions.c.token_hash == _hash(token)
            )
        ).first()
    if row is None:
        return None
    expires_at = row.expires_at
    # SQLite gives naive UTC times, PostgreSQL the session's time zone.
    expires_at = expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None else expires_at
    if expires_at <= datetime.now(UTC):
        return None
    return Session(csrf=row.csrf, expires_at=expires_at)


def end(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(admin_sessions).where(admin_sessions.c.token_hash == _hash(token)))


def prune(engine: Engine) -> int:
    """Delete expired sessions; how many were deleted."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(admin_sessions).where(admin_sessions.c.expires_at <= datetime.now(UTC))
        )
    return int(result.rowcount or 0)

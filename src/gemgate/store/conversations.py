"""Stored conversation turns, shared by every replica (see :mod:`conversation_tables`).

Each function is a short blocking transaction; callers run them off the event loop
(``asyncio.to_thread``). A turn is only ever found by its owner: every read and delete
names the key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from gemgate.store.conversation_tables import conversation_turns

RESPONSE = "response"
INTERACTION = "interaction"
DEFAULT_TTL = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Turn:
    id: str
    kind: str
    key_id: int
    model: str
    previous_id: str | None
    status: str
    body: bytes  # JSON of the protocol's object
    history: bytes  # JSON of the canonical conversation through this turn
    created_at: datetime
    expires_at: datetime
    updated_at: datetime | None = None  # as loaded: a running turn's lease was last renewed then


def new_id(prefix: str) -> str:
    """A random public id, e.g. ``resp_...``; unguessable, so it can be shown to clients."""
    return prefix + secrets.token_hex(24)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def save(engine: Engine, turn: Turn) -> None:
    """Insert the turn, or replace its status, body and history when it exists (a
    background turn is saved as it starts and again as it ends)."""
    now = datetime.now(UTC)
    c = conversation_turns.c
    with engine.begin() as conn:
        changed = conn.execute(
            update(conversation_turns)
            .where(c.id == turn.id, c.key_id == turn.key_id)
            .values(status=turn.status, body=turn.body, history=turn.history, updated_at=now)
        )
        if changed.rowcount == 0:
            conn.execute(
                insert(conversation_turns).values(
                    id=turn.id, kind=turn.kind, key_id=turn.key_id, model=turn.model,
                    previous_id=turn.previous_id, status=turn.status, body=turn.body,
                    history=turn.history, created_at=turn.created_at, updated_at=now,
                    expires_at=turn.expires_at,
                )
            )


def save_if(engine: Engine, turn: Turn, status: str, stale_before: datetime | None = None) -> bool:
    """Replace the turn's status, body and history only while its stored status is
    ``status`` (and, with ``stale_before``, its lease was last renewed before then): a run
    that ends never overwrites a status another replica set meanwhile (``cancelled``,
    ``failed``). Whether it was replaced."""
    c = conversation_turns.c
    condition = [c.id == turn.id, c.key_id == turn.key_id, c.status == status]
    if stale_before is not None:
        condition.append(c.updated_at < stale_before)
    with engine.begin() as conn:
        changed = conn.execute(
            update(conversation_turns)
            .where(*condition)
            .values(status=turn.status, body=turn.body, history=turn.history, updated_at=datetime.now(UTC))
        )
    return bool(changed.rowcount)


def renew(engine: Engine, kind: str, turn_id: str, key_id: int, status: str) -> str | None:
    """Renew a running turn's lease (its ``updated_at``) while its status is ``status``;
    the status stored now: ``status`` when renewed, another when someone changed it
    (a cancel on another replica), None when the turn is gone."""
    c = conversation_turns.c
    with engine.begin() as conn:
        changed = conn.execute(
            update(conversation_turns)
            .where(c.id == turn_id, c.kind == kind, c.key_id == key_id, c.status == status)
            .values(updated_at=datetime.now(UTC))
        )
        if changed.rowcount:
            return status
        row = conn.execute(
            select(c.status).where(c.id == turn_id, c.kind == kind, c.key_id == key_id)
        ).first()
    return None if row is None else str(row[0])


def stale(engine: Engine, kind: str, status: str, before: datetime, limit: int = 100) -> list[Turn]:
    """Turns of ``kind`` still in ``status`` whose lease was last renewed before ``before``
    (their owner is gone), oldest first."""
    c = conversation_turns.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(conversation_turns)
            .where(c.kind == kind, c.status == status, c.updated_at < before)
            .order_by(c.updated_at)
            .limit(limit)
        ).all()
    return [_turn(row._mapping) for row in rows]


def _turn(m: Any) -> Turn:
    return Turn(
        id=m["id"], kind=m["kind"], key_id=m["key_id"], model=m["model"],
        previous_id=m["previous_id"], status=m["status"], body=bytes(m["body"]),
        history=bytes(m["history"]), created_at=_aware(m["created_at"]),
        expires_at=_aware(m["expires_at"]), updated_at=_aware(m["updated_at"]),
    )


def load(engine: Engine, kind: str, turn_id: str, key_id: int) -> Turn | None:
    """The key's turn of this kind, or None (unknown, another key's, or expired)."""
    c = conversation_turns.c
    with engine.connect() as conn:
        row = conn.execute(
            select(conversation_turns).where(c.id == turn_id, c.kind == kind, c.key_id == key_id)
        ).first()
    if row is None:
        return None
    turn = _turn(row._mapping)
    if turn.expires_at <= datetime.now(UTC):
        return None
    return turn


def remove(engine: Engine, kind: str, turn_id: str, key_id: int) -> bool:
    """Delete the key's turn; False when there was none."""
    c = conversation_turns.c
    with engine.begin() as conn:
        result = conn.execute(
            delete(conversation_turns).where(c.id == turn_id, c.kind == kind, c.key_id == key_id)
        )
    return bool(result.rowcount)


def prune(engine: Engine, now: datetime | None = None) -> int:
    """Delete expired turns; how many were deleted."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(conversation_turns).where(
                conversation_turns.c.expires_at <= (now or datetime.now(UTC))
            )
        )
    return int(result.rowcount or 0)

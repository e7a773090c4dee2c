"""Channels and upstream keys turned off by an operator, shared by every replica.

A state is saved with the ``channels`` change counter bumped in the same transaction;
each server polls that counter (see :class:`gemgate.admin.switches.Switches`) and applies
the states when it moves. Only departures from the default are kept: turning a channel
back on deletes its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select

from gemgate.store.keys import bump_generation, generation
from gemgate.store.tables import channel_states

CHANNELS_GENERATION = "channels"
CHANNEL, KEY = "channel", "key"


@dataclass(frozen=True, slots=True)
class Disabled:
    channels: frozenset[str]  # channel labels
    keys: frozenset[tuple[str, str]]  # (provider, upstream key label)


def key_name(provider: str, label: str) -> str:
    return f"{provider}/{label}"


def set_enabled(engine: Engine, kind: str, name: str, enabled: bool) -> None:
    if kind not in (CHANNEL, KEY):
        raise ValueError(f"kind must be {CHANNEL!r} or {KEY!r}")
    where = (channel_states.c.kind == kind) & (channel_states.c.name == name)
    with engine.begin() as conn:
        conn.execute(delete(channel_states).where(where))
        if not enabled:
            conn.execute(
                insert(channel_states).values(
                    kind=kind, name=name, enabled=False, changed_at=datetime.now(UTC)
                )
            )
        bump_generation(conn, CHANNELS_GENERATION)


def channels_generation(engine: Engine) -> int:
    return generation(engine, CHANNELS_GENERATION)


def load_disabled(engine: Engine) -> tuple[int, Disabled]:
    """The change counter and what is turned off. The counter is read first: a change
    saved between the two reads moves it past the value returned, so it is read again."""
    gen = channels_generation(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            select(channel_states.c.kind, channel_states.c.name).where(
                channel_states.c.enabled.is_(False)
            )
        ).all()
    channels = frozenset(name for kind, name in rows if kind == CHANNEL)
    keys = frozenset(
        tuple(name.rsplit("/", 1)) for kind, name in rows if kind == KEY and "/" in name
    )
    return gen, Disabled(channels, keys)

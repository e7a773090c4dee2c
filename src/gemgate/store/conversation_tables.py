"""Stored conversation turns (migration 0009): the OpenAI Responses API's stored responses
and the Interactions API's interactions.

A turn is owned by the key that made it (``key_id``) and named by a random public id. It
keeps the object as its protocol returns it (``body``) and the whole conversation through
that turn in the canonical (Gemini) form (``history``), so a request naming a previous
turn (``previous_response_id``, ``previous_interaction_id``) resolves with one read.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, String, Table

from gemgate.store.tables import metadata

conversation_turns = Table(
    "conversation_turns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # "response" | "interaction"
    Column("key_id", Integer, nullable=False),
    Column("model", String(255), nullable=False),
    Column("previous_id", String(64), nullable=True),
    Column("status", String(16), nullable=False),  # as the protocol names it
    Column("body", LargeBinary, nullable=False),  # JSON: the protocol's object
    Column("history", LargeBinary, nullable=False),  # JSON: {"contents": [...], ...}
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_conversation_turns_key_created", conversation_turns.c.key_id, conversation_turns.c.created_at)
Index("ix_conversation_turns_expires", conversation_turns.c.expires_at)

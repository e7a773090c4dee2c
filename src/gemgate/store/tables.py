"""The database schema, as SQLAlchemy Core tables. Migrations in ``migrations/`` create it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

# Change counters the servers poll to invalidate their caches (e.g. "keys").
meta = Table(
    "gemgate_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False, default=0),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("models", JSON, nullable=True),  # None: every model
    Column("allowed_ips", JSON, nullable=True),  # None: any address
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("budget_nanos", BigInteger, nullable=True),  # None: no budget
    Column("spent_nanos", BigInteger, nullable=False, default=0),
    Column("rpm", Integer, nullable=True),  # requests per minute; None: no limit
    # Keep this key's request and response bodies (redacted) in request_bodies.
    Column("log_bodies", Boolean, nullable=False, default=False, server_default=false()),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("key_id", Integer, nullable=True),
    Column("key_name", String(200), nullable=True),
    Column("model", String(200), nullable=False),
    Column("provider", String(100), nullable=False),
    Column("door", String(16), nullable=False),
    Column("method", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("prompt_text", BigInteger, nullable=False, default=0),
    Column("prompt_image", BigInteger, nullable=False, default=0),
    Column("prompt_audio", BigInteger, nullable=False, default=0),
    Column("prompt_video", BigInteger, nullable=False, default=0),
    Column("prompt_document", BigInteger, nullable=False, default=0),
    Column("cached_tokens", BigInteger, nullable=False, default=0),
    Column("tool_use_prompt_tokens", BigInteger, nullable=False, default=0),
    Column("thoughts_tokens", BigInteger, nullable=False, default=0),
    Column("output_text", BigInteger, nullable=False, default=0),
    Column("output_image", BigInteger, nullable=False, default=0),
    Column("output_audio", BigInteger, nullable=False, default=0),
    Column("total_tokens", BigInteger, nullable=False, default=0),
    Column("cost_nanos", BigInteger, nullable=False, default=0),
    Column("estimated", Boolean, nullable=False, default=False),
    Column("interrupted", Boolean, nullable=False, default=False),
    Column("streamed", Boolean, nullable=False, default=False),
    Column("latency_ms", Integer, nullable=False, default=0),
    Column("ttfb_ms", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("channel", String(300), nullable=True),  # "{provider}/{upstream model}" that answered
    Column("upstream_key", String(100), nullable=True),  # that upstream key's label, never its value
    Column("attempts", Integer, nullable=False, default=0),  # upstream attempts made
    # The attempts that failed, as a JSON list of {channel, key, error, status, at_ms, ms}.
    Column("failed_attempts", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("batch_id", String(40), nullable=True),  # the batch an item's record belongs to
    # The prices the record was billed with ("<price data version>@<entry>") and its
    # service tier; NULL on records made before they were kept (migration 0005).
    Column("price_version", String(200), nullable=True),
    Column("service_tier", String(16), nullable=True),
)
# The request log reads newest first by (started_at, id), filtered; each index below
# serves one filter with that order after it (migration 0006 gives the reasons and the
# write cost). The time index is (started_at, id), replacing one on started_at alone.
_u = usage_records.c
Index("ix_usage_records_started_id", _u.started_at, _u.id)
Index("ix_usage_records_model_started", _u.model, _u.started_at, _u.id)
Index("ix_usage_records_key_started", _u.key_id, _u.started_at, _u.id)
Index("ix_usage_records_channel_started", _u.channel, _u.started_at, _u.id)
Index(
    "ix_usage_records_failed_started",
    _u.started_at,
    _u.id,
    postgresql_where=_u.status != "ok",
    sqlite_where=_u.status != "ok",
)
Index(
    "ix_usage_records_batch",
    _u.batch_id,
    postgresql_where=_u.batch_id.is_not(None),
    sqlite_where=_u.batch_id.is_not(None),
)


# Channels and upstream keys an operator turned off, read by every replica (the "channels"
# change counter in gemgate_meta says when to read again). kind: "channel" (name: the
# channel label "{provider}/{upstream model}") or "key" (name: "{provider}/{key label}").
channel_states = Table(
    "channel_states",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(400), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

# Request and response bodies of keys with log_bodies on, secrets and media redacted.
request_bodies = Table(
    "request_bodies",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("key_id", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("request", Text, nullable=True),
    Column("response", Text, nullable=True),
)

# Signed-in console sessions: the cookie's token is stored only as its SHA-256.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# Ephemeral tokens for the Live API, minted for a key (auth_tokens.create). The token is
# stored only as its SHA-256. ``setup`` holds the locked setup constraints (JSON text, None:
# nothing locked) and ``field_mask`` the locked field paths (None: the whole setup).
live_tokens = Table(
    "live_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("uses_left", Integer, nullable=False),
    Column("expire_time", DateTime(timezone=True), nullable=False, index=True),
    Column("new_session_expire_time", DateTime(timezone=True), nullable=False),
    Column("setup", Text, nullable=True),
    Column("field_mask", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

"""The database schema, as SQLAlchemy Core tables. Migrations in ``migrations/`` create it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
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
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("key_id", Integer, nullable=True),
    Column("key_name", String(200), nullable=True),
    Column("model", String(200), nullable=False, index=True),
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
    Column("started_at", DateTime(timezone=True), nullable=False, index=True),
    Column("finished_at", DateTime(timezone=True), nullable=False),
)

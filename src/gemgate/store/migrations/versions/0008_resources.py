"""Gemini's stateful resources: files (and their bytes, when the database holds them),
cached contents, batches and their items, the upstream copies of each; usage records name
the batch they belong to.

Revision ID: 0008
Revises: 0007

``usage_records.batch_id`` is indexed only where it is set (a partial index): interactive
requests, the bulk of the ledger's writes, pay nothing for it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

HAS_BATCH = sa.text("batch_id IS NOT NULL")


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(40), nullable=True))
    op.create_index(
        "ix_usage_records_batch",
        "usage_records",
        ["batch_id"],
        postgresql_where=HAS_BATCH,
        sqlite_where=HAS_BATCH,
    )
    op.create_table(
        "gemini_files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("display_name", sa.String(512), nullable=True),
        sa.Column("mime_type", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("received_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("upload_hash", sa.String(64), nullable=True, unique=True),
        _when("upload_expires_at", nullable=True),
        sa.Column("modality", sa.String(16), nullable=True),
        sa.Column("tokens", sa.BigInteger, nullable=True),
        sa.Column("token_bound", sa.BigInteger, nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("expires_at"),
    )
    op.create_index("ix_gemini_files_key_created", "gemini_files", ["key_id", "created_at"])
    op.create_index("ix_gemini_files_expires", "gemini_files", ["expires_at"])
    op.create_table(
        "file_chunks",
        sa.Column("file_id", sa.String(40), primary_key=True),
        sa.Column("start", sa.BigInteger, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "file_copies",
        sa.Column("file_id", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(300), primary_key=True),
        sa.Column("upstream_name", sa.String(200), nullable=False),
        sa.Column("upstream_uri", sa.String(1000), nullable=False),
        _when("expires_at"),
    )
    op.create_table(
        "cached_contents",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("expires_at"),
        _when("billed_until"),
        _when("deleted_at", nullable=True),
    )
    op.create_index(
        "ix_cached_contents_key_created", "cached_contents", ["key_id", "created_at"]
    )
    op.create_table(
        "cache_copies",
        sa.Column("cache_id", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(300), primary_key=True),
        sa.Column("channel", sa.String(300), nullable=False),
        sa.Column("upstream_name", sa.String(200), nullable=False),
        _when("expires_at"),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("input_file", sa.String(40), nullable=True),
        sa.Column("output_file", sa.String(40), nullable=True),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("succeeded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reserved_nanos", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("channel", sa.String(300), nullable=True),
        sa.Column("holder", sa.String(300), nullable=True),
        sa.Column("upstream_name", sa.String(200), nullable=True),
        sa.Column("lease_owner", sa.String(40), nullable=True),
        _when("lease_until", nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("end_time", nullable=True),
        _when("expires_at"),
    )
    op.create_index("ix_batches_key_created", "batches", ["key_id", "created_at"])
    op.create_index("ix_batches_state", "batches", ["state"])
    op.create_table(
        "batch_items",
        sa.Column("batch_id", sa.String(40), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("item_key", sa.String(512), nullable=True),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("tries", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    for table in (
        "batch_items",
        "batches",
        "cache_copies",
        "cached_contents",
        "file_copies",
        "file_chunks",
        "gemini_files",
    ):
        op.drop_table(table)
    op.drop_index("ix_usage_records_batch", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("batch_id")

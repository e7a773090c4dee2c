"""The operator's console: request-log indexes, channel switches, body logging, sessions.

Revision ID: 0006
Revises: 0005

The request log is ``usage_records`` read newest first by ``(started_at, id)``, filtered,
in keyset pages. Every index is one more b-tree insert per usage row on the ledger's write
path, so each one here serves a filter that would otherwise scan the table, and each ends
in ``(started_at, id)`` so that the filter plus any time window is one index range read in
page order (no sort, no planner guess about where in the id order a window lies):

- ``(started_at, id)`` replaces the index on ``started_at`` alone (same write cost): time
  windows, reports and retention read it as before, and an unfiltered page is its tail.
- ``(model, started_at, id)`` replaces the index on ``model`` alone (same write cost).
- ``(key_id, started_at, id)``: one key's requests (the console's most common question),
  kept together when a key is renamed (records keep the name they were made under).
- ``(channel, started_at, id)``: one channel's requests; a fallback channel that serves few
  requests is exactly the one an operator looks at, and without this its page would scan
  the table.
- ``(started_at, id) WHERE status <> 'ok'``: failed and interrupted requests (also what an
  error-text or error-status search reads). Partial: only rows that are not ``ok`` pay.

So the write path gains two full indexes (key, channel) and one partial one. Door, method
and HTTP status are left unindexed: a handful of values each, so a page of any common
value is found within the first rows in page order, and the rare ones (errors) are served
by the partial index.

Building these on a large existing table holds writes to it for the build's duration
(seconds per million rows).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FAILED = sa.text("status <> 'ok'")
INDEXES = (
    ("ix_usage_records_started_id", ["started_at", "id"]),
    ("ix_usage_records_model_started", ["model", "started_at", "id"]),
    ("ix_usage_records_key_started", ["key_id", "started_at", "id"]),
    ("ix_usage_records_channel_started", ["channel", "started_at", "id"]),
)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("log_bodies", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.drop_index("ix_usage_records_model", table_name="usage_records")
    op.drop_index("ix_usage_records_started_at", table_name="usage_records")
    for name, columns in INDEXES:
        op.create_index(name, "usage_records", columns)
    op.create_index(
        "ix_usage_records_failed_started",
        "usage_records",
        ["started_at", "id"],
        postgresql_where=FAILED,
        sqlite_where=FAILED,
    )
    op.create_table(
        "channel_states",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(400), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "request_bodies",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("request", sa.Text, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("admin_sessions")
    op.drop_table("request_bodies")
    op.drop_table("channel_states")
    op.drop_index("ix_usage_records_failed_started", table_name="usage_records")
    for name, _columns in INDEXES:
        op.drop_index(name, table_name="usage_records")
    op.create_index("ix_usage_records_started_at", "usage_records", ["started_at"])
    op.create_index("ix_usage_records_model", "usage_records", ["model"])
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("log_bodies")

"""Ephemeral tokens of the Live API, shared by every replica.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("uses_left", sa.Integer, nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("new_session_expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("setup", sa.Text, nullable=True),
        sa.Column("field_mask", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_live_tokens_expire_time", "live_tokens", ["expire_time"])


def downgrade() -> None:
    op.drop_index("ix_live_tokens_expire_time", table_name="live_tokens")
    op.drop_table("live_tokens")

"""Stored conversation turns: OpenAI Responses and Gemini Interactions.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "conversation_turns",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("previous_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("history", sa.LargeBinary, nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("expires_at"),
    )
    op.create_index(
        "ix_conversation_turns_key_created", "conversation_turns", ["key_id", "created_at"]
    )
    op.create_index("ix_conversation_turns_expires", "conversation_turns", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_conversation_turns_expires", table_name="conversation_turns")
    op.drop_index("ix_conversation_turns_key_created", table_name="conversation_turns")
    op.drop_table("conversation_turns")

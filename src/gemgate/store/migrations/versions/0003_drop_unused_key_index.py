"""Drop the index on usage_records.key_id: no query reads by it (reports filter by key
name, budgets read api_keys), and every usage row paid for it on the write path.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_usage_records_key_id", table_name="usage_records")


def downgrade() -> None:
    op.create_index("ix_usage_records_key_id", "usage_records", ["key_id"])

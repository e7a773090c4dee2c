"""Usage records name the channel and upstream key that answered, and the attempts made.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("channel", sa.String(300), nullable=True))
        batch.add_column(sa.Column("upstream_key", sa.String(100), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("failed_attempts", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("failed_attempts")
        batch.drop_column("attempts")
        batch.drop_column("upstream_key")
        batch.drop_column("channel")

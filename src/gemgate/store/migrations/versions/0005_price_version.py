"""Usage records name the prices they were billed with and the service tier.

Revision ID: 0005
Revises: 0004

``price_version`` is "<price data version>@<entry>" (see ``gemgate.catalog.pricing``), so
a later price change never rewrites what a record cost nor hides which prices applied;
``service_tier`` is the tier it was billed in (standard, flex, priority, batch). Both are
NULL on records made before this revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("price_version", sa.String(200), nullable=True))
        batch.add_column(sa.Column("service_tier", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("service_tier")
        batch.drop_column("price_version")

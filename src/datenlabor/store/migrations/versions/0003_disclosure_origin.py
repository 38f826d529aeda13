"""disclosure rules and origin of datasets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:00:00

``datasets.disclosure``: the statistical disclosure control rules of a confidential dataset
(NULL = not confidential); see ``datenlabor.disclosure``.
``datasets.origin``: where a dataset comes from when the pool did not get it by upload:
a harvested catalogue record or a GENESIS table (source URL, identifier, modified date,
content hash), which incremental harvesting and refreshes compare against.
``grants.microdata``: the grantee may see the microdata of a confidential dataset (otherwise
only its protected aggregate table).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disclosure", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("origin", sa.JSON(), nullable=True))
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("microdata", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("microdata")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("origin")
        batch_op.drop_column("disclosure")

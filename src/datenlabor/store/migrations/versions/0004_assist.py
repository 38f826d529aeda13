"""AI assistance: models, suggestions and the human decisions on them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "assist_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artifact", sa.String(length=500), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_table(
        "assist_suggestions",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("template_version", sa.String(length=100), nullable=True),
        sa.Column("retrieved", sa.JSON(), nullable=False),
        sa.Column("suggestion", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["assist_models.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assist_suggestions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assist_suggestions_request_id"), ["request_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assist_suggestions_status"), ["status"], unique=False)
    op.create_table(
        "assist_decisions",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("suggestion_id", _BIG_ID, nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("final", sa.JSON(), nullable=False),
        sa.Column("edits", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["suggestion_id"], ["assist_suggestions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assist_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assist_decisions_suggestion_id"), ["suggestion_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("assist_decisions")
    op.drop_table("assist_suggestions")
    op.drop_table("assist_models")

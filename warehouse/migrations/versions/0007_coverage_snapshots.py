"""coverage_snapshots: the province's coverage of each campaign per cycle after each ingest

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coverage_snapshots",
        sa.Column("snapshot_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(length=60), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cycle", sa.String(length=20), nullable=False),
        sa.Column("schools", sa.Integer(), nullable=False),
        sa.Column("owed", sa.Integer(), nullable=False),
        sa.Column("covered", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id"),
    )
    with op.batch_alter_table("coverage_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coverage_snapshots_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_coverage_snapshots_taken_at"), ["taken_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("coverage_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coverage_snapshots_taken_at"))
        batch_op.drop_index(batch_op.f("ix_coverage_snapshots_campaign_id"))
    op.drop_table("coverage_snapshots")

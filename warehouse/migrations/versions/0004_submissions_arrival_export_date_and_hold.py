"""submissions: arrival in the inbox, the export's own date, and the hold of a shrinking resend

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("exported_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("exported_on_source", sa.String(length=20), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("hold", sa.String(length=10), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("hold_rows_before", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("hold_rows_after", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("confirmed_by", sa.String(length=100), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_submissions_hold"), ["hold"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submissions_hold"))
        for column in (
            "confirmed_at",
            "confirmed_by",
            "hold_rows_after",
            "hold_rows_before",
            "hold",
            "exported_on_source",
            "exported_on",
            "arrived_at",
        ):
            batch_op.drop_column(column)

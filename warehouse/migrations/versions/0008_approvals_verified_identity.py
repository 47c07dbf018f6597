"""approvals: the verified identity of an approver; approver_codes; refused_attempts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("identity_method", sa.String(length=40), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("os_account", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("code_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("digest", sa.String(length=64), nullable=False, server_default="")
        )
    op.create_table(
        "approver_codes",
        sa.Column("approver", sa.String(length=100), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("approver"),
    )
    op.create_table(
        "refused_attempts",
        sa.Column("attempt_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(length=60), nullable=False),
        sa.Column("act", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("claimed", sa.String(length=100), nullable=False),
        sa.Column("os_account", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("attempt_id"),
    )
    with op.batch_alter_table("refused_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_refused_attempts_batch_id"), ["batch_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("refused_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refused_attempts_batch_id"))
    op.drop_table("refused_attempts")
    op.drop_table("approver_codes")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("digest")
        batch_op.drop_column("code_step")
        batch_op.drop_column("os_account")
        batch_op.drop_column("identity_method")

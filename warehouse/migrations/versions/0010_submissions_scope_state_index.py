"""submissions: one index on (scope_key, state) instead of scope_key alone; consolidated_at indexed

A school's ingest asks for the active submissions of its files' scopes (resends held or
superseded: ``scope_key IN (...) AND state IN (...)``). With an index on each column apart,
SQLite's planner (no statistics) took the state's index and walked every active submission of
the installation, for each school: 7 ms a school with 31 k submissions, growing night after
night. The composite index serves both conditions; it also serves lookups by scope alone, so
the single-column index goes.

Each night asks per dataset (and ``massar status`` once) for the submissions no consolidation
has taken yet (``consolidated_at IS NULL``): through the state's index, that walked every
processed submission ever recorded (216 ms a dataset at 300 k submissions, a year or so of a
province's files, eleven datasets a night); through an index on consolidated_at, ~9 ms.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_submissions_scope_state", "submissions", ["scope_key", "state"])
    op.drop_index("ix_submissions_scope_key", table_name="submissions")
    op.create_index("ix_submissions_consolidated_at", "submissions", ["consolidated_at"])


def downgrade() -> None:
    op.drop_index("ix_submissions_consolidated_at", table_name="submissions")
    op.create_index("ix_submissions_scope_key", "submissions", ["scope_key"])
    op.drop_index("ix_submissions_scope_state", table_name="submissions")

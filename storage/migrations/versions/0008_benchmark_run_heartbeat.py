"""benchmark runs: the process driving a run and its last heartbeat

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("benchmark_runs", sa.Column("owner", sa.String(64)))
    op.add_column("benchmark_runs", sa.Column("heartbeat_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("benchmark_runs") as batch:  # SQLite rebuilds the table
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")

"""workflow runs: the process driving a run and its last heartbeat

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workflow_runs", sa.Column("owner", sa.String(64)))
    op.add_column("workflow_runs", sa.Column("heartbeat_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:  # SQLite rebuilds the table
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")

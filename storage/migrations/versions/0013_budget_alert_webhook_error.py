"""budget alerts: why the webhook failed, or why its URL was refused

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("budget_alerts", sa.Column("webhook_error", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("budget_alerts") as batch:  # SQLite rebuilds the table
        batch.drop_column("webhook_error")

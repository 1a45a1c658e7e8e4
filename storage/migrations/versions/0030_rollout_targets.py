"""rollouts: the primary metric a candidate must be proven not worse on, and its non-inferiority margin

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollouts", sa.Column("primary_metric", sa.String(20), nullable=False,
                                        server_default="error_rate"))
    op.add_column("rollouts", sa.Column("non_inferiority_margin", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:  # SQLite rebuilds the table
        batch.drop_column("non_inferiority_margin")
        batch.drop_column("primary_metric")

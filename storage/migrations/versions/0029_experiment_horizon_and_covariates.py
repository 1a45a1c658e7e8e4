"""experiments: a planned sample size that calibrates the sequential tests, and pre-period values for CUPED

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("planned_sample_size", sa.BigInteger))
    op.add_column("experiments", sa.Column("cuped_metrics", sa.JSON))
    op.add_column("experiment_metric_values", sa.Column("pre_period_value", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("experiment_metric_values") as batch:  # SQLite rebuilds the table
        batch.drop_column("pre_period_value")
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("cuped_metrics")
        batch.drop_column("planned_sample_size")

"""metric samples: values the original's `track_metric(model_id, metric_name, value)` records

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("metric_name", sa.String(100), nullable=False),
        sa.Column("metric_value", sa.Float, nullable=False),
    )
    op.create_index("ix_metric_samples_model_metric_created_at", "metric_samples",
                    ["model", "metric_name", "created_at"])


def downgrade() -> None:
    op.drop_table("metric_samples")

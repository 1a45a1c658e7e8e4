"""tracked costs: each `track_cost` call and the request-log row it counts as (claimed or created)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "tracked_costs",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("cost", sa.Float),
        sa.Column("tokens", sa.Integer),
        sa.Column("request_id", sa.String(36), nullable=False, unique=True),
        sa.Column("linked", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tracked_costs")

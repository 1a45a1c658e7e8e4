"""experiments: how p-values are adjusted across treatments, `holm` (existing experiments) or `bh`

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("multiple_testing", sa.String(10), nullable=False,
                                           server_default="holm"))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:  # SQLite rebuilds the table
        batch.drop_column("multiple_testing")

"""request log: the images a call sent (type and inline size, or https URL; never the bytes)

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("request_log", sa.Column("images", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:  # SQLite rebuilds the table
        batch.drop_column("images")

"""request log: a group's attempts (group, the client's request id, attempt index) and degraded answers

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

COLUMNS = ("route_group", "client_request_id", "attempt", "degraded")


def upgrade() -> None:
    op.add_column("request_log", sa.Column("route_group", sa.String(200)))
    op.add_column("request_log", sa.Column("client_request_id", sa.String(36)))
    op.add_column("request_log", sa.Column("attempt", sa.Integer))
    op.add_column("request_log", sa.Column("degraded", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_request_log_client_request_id", "request_log", ["client_request_id"])


def downgrade() -> None:
    op.drop_index("ix_request_log_client_request_id", "request_log")
    with op.batch_alter_table("request_log") as batch:  # SQLite rebuilds the table
        for column in COLUMNS:
            batch.drop_column(column)

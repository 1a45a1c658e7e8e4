"""request log and registered models

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(36), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("user_id", sa.String(200)),
        sa.Column("api_key_id", sa.String(64)),
        sa.Column("tags", sa.JSON),
        sa.Column("params", sa.JSON),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("prompt", sa.Text),
        sa.Column("response", sa.Text),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("thinking_tokens", sa.Integer),
        sa.Column("cached_tokens", sa.Integer),
        sa.Column("total_tokens", sa.Integer),
        sa.Column("latency", sa.Float),
        sa.Column("ttft", sa.Float),
        sa.Column("cost", sa.Float),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("finish_reason", sa.String(50)),
        sa.Column("error_type", sa.String(100)),
        sa.Column("error_message", sa.Text),
    )
    op.create_index("ix_request_log_created_at", "request_log", ["created_at"])
    op.create_index("ix_request_log_model_created_at", "request_log", ["model", "created_at"])
    op.create_index("ix_request_log_user_created_at", "request_log", ["user_id", "created_at"])
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("aliases", sa.JSON),
        sa.Column("capabilities", sa.JSON),
        sa.Column("pricing", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("registered_models")
    op.drop_table("request_log")

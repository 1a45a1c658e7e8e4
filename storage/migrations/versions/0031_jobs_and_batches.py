"""jobs and batches: durable background jobs, batches and their items

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("scheduled_at", sa.DateTime, nullable=False),
        sa.Column("payload", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("progress_done", sa.Integer),
        sa.Column("progress_total", sa.Integer),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("api_key_id", sa.String(64)),
        sa.Column("owner", sa.String(64)),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.Column("dispatched_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
    )
    op.create_index("ix_jobs_status_priority", "jobs", ["status", "priority", "scheduled_at"])
    op.create_table(
        "batches",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("job_id", ID_TYPE, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("scheduled_at", sa.DateTime, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("api_key_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("cancelled_at", sa.DateTime),
    )
    op.create_table(
        "batch_items",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("batch_id", ID_TYPE, sa.ForeignKey("batches.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("custom_id", sa.String(200)),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("not_before", sa.DateTime, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("context", sa.JSON),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(36)),
        sa.Column("result", sa.JSON),
        sa.Column("owner", sa.String(64)),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
    )
    op.create_index("ix_batch_items_batch_position", "batch_items", ["batch_id", "position"], unique=True)
    op.create_index("ix_batch_items_status_priority", "batch_items", ["status", "priority"])


def downgrade() -> None:
    op.drop_index("ix_batch_items_status_priority", "batch_items")
    op.drop_index("ix_batch_items_batch_position", "batch_items")
    op.drop_table("batch_items")
    op.drop_table("batches")
    op.drop_index("ix_jobs_status_priority", "jobs")
    op.drop_table("jobs")

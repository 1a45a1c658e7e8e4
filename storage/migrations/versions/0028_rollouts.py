"""rollouts: scheduled traffic moves from a control to a candidate, and their timelines

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("control", sa.String(200), nullable=False),
        sa.Column("candidate", sa.String(200), nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("min_calls_per_step", sa.Integer, nullable=False),
        sa.Column("min_seconds_per_step", sa.Float, nullable=False),
        sa.Column("guardrails", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("routed_control", sa.String(200)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("step_started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.UniqueConstraint("routed_control", name="uq_rollouts_routed_control"),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("percent", sa.Float, nullable=False),
        sa.Column("details", sa.JSON),
    )
    op.create_index("ix_rollout_events_rollout_id", "rollout_events", ["rollout_id"])


def downgrade() -> None:
    op.drop_index("ix_rollout_events_rollout_id", "rollout_events")
    op.drop_table("rollout_events")
    op.drop_table("rollouts")

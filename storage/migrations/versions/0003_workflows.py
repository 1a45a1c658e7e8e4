"""workflow definitions (versioned), runs and run steps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "workflow_definitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_workflow_definitions_name_version"),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("workflow_name", sa.String(100), nullable=False),
        sa.Column("workflow_version", sa.Integer),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("variables", sa.JSON),
        sa.Column("final_output", sa.Text),
        sa.Column("total_tokens", sa.Integer),
        sa.Column("total_cost", sa.Float),
        sa.Column("total_latency", sa.Float),
        sa.Column("wall_time", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("error_step", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
    )
    op.create_index("ix_workflow_runs_status", "workflow_runs", ["status"])
    op.create_index("ix_workflow_runs_created_at", "workflow_runs", ["created_at"])
    op.create_table(
        "workflow_run_steps",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("workflow_runs.run_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("step_group", sa.String(64)),
        sa.Column("model", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("prompt", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("parsed", sa.JSON),
        sa.Column("response", sa.Text),
        sa.Column("tokens", sa.Integer),
        sa.Column("cost", sa.Float),
        sa.Column("latency", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("request_id", sa.String(36)),
        sa.Column("attempts", sa.JSON),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.UniqueConstraint("run_id", "position", name="uq_workflow_run_steps_run_position"),
    )
    op.create_index("ix_workflow_run_steps_request_id", "workflow_run_steps", ["request_id"])


def downgrade() -> None:
    op.drop_table("workflow_run_steps")
    op.drop_table("workflow_runs")
    op.drop_table("workflow_definitions")

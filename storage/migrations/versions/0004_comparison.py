"""comparisons, their entries and pairwise outcomes; benchmark runs and their results

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "comparisons",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("winner", sa.String(200)),
        sa.Column("tie", sa.Boolean, nullable=False),
        sa.Column("wall_time", sa.Float),
        sa.Column("total_cost", sa.Float),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_comparisons_created_at", "comparisons", ["created_at"])
    op.create_table(
        "comparison_entries",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("comparison_id", ID_TYPE, sa.ForeignKey("comparisons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("total_score", sa.Float),
        sa.Column("request_ids", sa.JSON),
    )
    op.create_index("ix_comparison_entries_comparison_id", "comparison_entries", ["comparison_id"])
    op.create_index("ix_comparison_entries_model", "comparison_entries", ["model"])
    op.create_table(
        "comparison_pairs",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("comparison_id", ID_TYPE, sa.ForeignKey("comparisons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model_a", sa.String(200), nullable=False),
        sa.Column("model_b", sa.String(200), nullable=False),
        sa.Column("score_a", sa.Float, nullable=False),
    )
    op.create_index("ix_comparison_pairs_comparison_id", "comparison_pairs", ["comparison_id"])
    op.create_table(
        "benchmark_runs",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("completed", sa.Integer, nullable=False),
        sa.Column("report", sa.JSON),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_benchmark_runs_created_at", "benchmark_runs", ["created_at"])
    op.create_table(
        "benchmark_results",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("run_id", ID_TYPE, sa.ForeignKey("benchmark_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("task", sa.String(50)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(36)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("response", sa.Text),
        sa.Column("score", sa.Float),
        sa.Column("correct", sa.Boolean, nullable=False),
        sa.Column("latency", sa.Float),
        sa.Column("cost", sa.Float),
        sa.Column("tokens", sa.Integer),
        sa.Column("scores", sa.JSON),
        sa.Column("error", sa.JSON),
    )
    op.create_index("ix_benchmark_results_run_id", "benchmark_results", ["run_id"])


def downgrade() -> None:
    op.drop_table("benchmark_results")
    op.drop_table("benchmark_runs")
    op.drop_table("comparison_pairs")
    op.drop_table("comparison_entries")
    op.drop_table("comparisons")

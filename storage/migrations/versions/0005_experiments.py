"""A/B experiments: experiments, variants, sticky assignments, exposures, results and metric values

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("control", sa.String(100), nullable=False),
        sa.Column("coverage", sa.Float, nullable=False),
        sa.Column("seed", sa.String(200), nullable=False),
        sa.Column("primary_metric", sa.String(100), nullable=False),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("power", sa.Float, nullable=False),
        sa.Column("min_sample_size", sa.Integer, nullable=False),
        sa.Column("min_conversions", sa.Integer, nullable=False),
        sa.Column("mde", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("completed_at", sa.DateTime),
    )
    op.create_index("ix_experiments_created_at", "experiments", ["created_at"])
    op.create_table(
        "experiment_variants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("params", sa.JSON),
        sa.UniqueConstraint("experiment_id", "name", name="uq_experiment_variants_name"),
    )
    op.create_table(
        "experiment_assignments",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("variant", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("experiment_id", "user_id", name="uq_experiment_assignments_user"),
    )
    op.create_table(
        "experiment_exposures",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("variant", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(200)),
        sa.Column("request_id", sa.String(36), nullable=False, unique=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_experiment_exposures_variant", "experiment_exposures", ["experiment_id", "variant"])
    op.create_table(
        "experiment_results",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("variant", sa.String(100), nullable=False),
        sa.Column("outcome_id", sa.String(200)),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("rating", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("experiment_id", "outcome_id", name="uq_experiment_results_outcome"),
    )
    op.create_index("ix_experiment_results_variant", "experiment_results", ["experiment_id", "variant"])
    op.create_table(
        "experiment_metric_values",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("variant", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("result_id", ID_TYPE, sa.ForeignKey("experiment_results.id")),
        sa.Column("exposure_id", ID_TYPE, sa.ForeignKey("experiment_exposures.id")),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index(
        "ix_experiment_metric_values_variant", "experiment_metric_values", ["experiment_id", "variant", "name"]
    )


def downgrade() -> None:
    op.drop_table("experiment_metric_values")
    op.drop_table("experiment_results")
    op.drop_table("experiment_exposures")
    op.drop_table("experiment_assignments")
    op.drop_table("experiment_variants")
    op.drop_table("experiments")

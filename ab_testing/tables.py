"""Tables of A/B experiments: experiments, variants, sticky assignments, exposures, results and metric values."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from storage.database import ID_TYPE, metadata

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("control", String(100), nullable=False),
    Column("coverage", Float, nullable=False),
    Column("seed", String(200), nullable=False),
    Column("primary_metric", String(100), nullable=False),
    Column("alpha", Float, nullable=False),
    Column("power", Float, nullable=False),
    Column("min_sample_size", Integer, nullable=False),
    Column("min_conversions", Integer, nullable=False),
    Column("mde", Float),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("completed_at", DateTime),
    Index("ix_experiments_created_at", "created_at"),
    Column("api_key_id", String(64)),  # the managed key that owns it; NULL: an admin's, or no keys
    # How p-values are adjusted across treatments: `holm` (family-wise error) or `bh` (false discovery rate).
    Column("multiple_testing", String(10), nullable=False, server_default="holm"),
    # Total units the experiment plans to reach: its sequential tests spend their whole alpha by then.
    Column("planned_sample_size", BigInteger),
    Column("cuped_metrics", JSON),  # named metrics whose outcomes carry the unit's pre-period value (CUPED)
)

experiment_variants = Table(
    "experiment_variants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("model", String(200), nullable=False),
    Column("weight", Float, nullable=False),
    Column("params", JSON),
    Column("prompt_ref", JSON),  # {name, version | label}: a registry prompt this variant renders
    UniqueConstraint("experiment_id", "name", name="uq_experiment_variants_name"),
)

experiment_assignments = Table(
    "experiment_assignments",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("variant", String(100), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("experiment_id", "user_id", name="uq_experiment_assignments_user"),
)

experiment_exposures = Table(
    "experiment_exposures",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("variant", String(100), nullable=False),
    Column("user_id", String(200)),
    Column("request_id", String(36), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_experiment_exposures_variant", "experiment_id", "variant"),
)

# Named like the original table; one row per recorded outcome.
experiment_results = Table(
    "experiment_results",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("variant", String(100), nullable=False),
    Column("outcome_id", String(200)),
    Column("success", Boolean, nullable=False),
    Column("rating", Float),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("experiment_id", "outcome_id", name="uq_experiment_results_outcome"),
    Index("ix_experiment_results_variant", "experiment_id", "variant"),
)

# Named numeric metrics: from outcomes (result_id) or captured from a model call (exposure_id).
experiment_metric_values = Table(
    "experiment_metric_values",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("variant", String(100), nullable=False),
    Column("name", String(100), nullable=False),
    Column("value", Float, nullable=False),
    Column("result_id", ID_TYPE, ForeignKey("experiment_results.id")),
    Column("exposure_id", ID_TYPE, ForeignKey("experiment_exposures.id")),
    Column("created_at", DateTime, nullable=False),
    Index("ix_experiment_metric_values_variant", "experiment_id", "variant", "name"),
    Column("pre_period_value", Float),  # the unit's value of this metric before the experiment, for CUPED
)

"""Tables of the comparison service: comparisons with their entries and pairwise outcomes, benchmark runs."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from storage.database import ID_TYPE, metadata

comparisons = Table(
    "comparisons",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("created_at", DateTime, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("models", JSON, nullable=False),
    Column("winner", String(200)),
    Column("tie", Boolean, nullable=False),
    Column("wall_time", Float),
    Column("total_cost", Float),
    Column("result", JSON, nullable=False),
    Index("ix_comparisons_created_at", "created_at"),
)

comparison_entries = Table(
    "comparison_entries",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("comparison_id", ID_TYPE, ForeignKey("comparisons.id", ondelete="CASCADE"), nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("total_score", Float),
    Column("request_ids", JSON),
    Index("ix_comparison_entries_comparison_id", "comparison_id"),
    Index("ix_comparison_entries_model", "model"),
)

comparison_pairs = Table(
    "comparison_pairs",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("comparison_id", ID_TYPE, ForeignKey("comparisons.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("model_a", String(200), nullable=False),
    Column("model_b", String(200), nullable=False),
    Column("score_a", Float, nullable=False),
    Index("ix_comparison_pairs_comparison_id", "comparison_id"),
)

benchmark_runs = Table(
    "benchmark_runs",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String(20), nullable=False),
    Column("dataset", String(200), nullable=False),
    Column("models", JSON, nullable=False),
    Column("params", JSON),
    Column("total", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("report", JSON),
    Column("error", Text),
    Column("owner", String(64)),  # the runner (host, process) executing the run
    Column("heartbeat_at", DateTime),  # NULL: no runner vouches for the run (pending or pre-heartbeat rows)
    Index("ix_benchmark_runs_created_at", "created_at"),
    Column("api_key_id", String(64)),  # the managed key that owns it; NULL: an admin's, or no keys
)

benchmark_results = Table(
    "benchmark_results",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("run_id", ID_TYPE, ForeignKey("benchmark_runs.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("item_id", String(200), nullable=False),
    Column("task", String(50)),
    Column("model", String(200), nullable=False),
    Column("request_id", String(36)),
    Column("status", String(20), nullable=False),
    Column("response", Text),
    Column("score", Float),
    Column("correct", Boolean, nullable=False),
    Column("latency", Float),
    Column("cost", Float),
    Column("tokens", Integer),
    Column("scores", JSON),
    Column("error", JSON),
    Index("ix_benchmark_results_run_id", "run_id"),
)

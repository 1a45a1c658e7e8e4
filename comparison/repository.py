"""Reads and writes comparisons, their per-model entries and pairwise outcomes; one unit of work per method."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, select

from comparison.tables import comparison_entries, comparison_pairs, comparisons
from storage.clock import utcnow
from storage.database import inserted_id, read, write


@dataclass(frozen=True)
class EntryRow:
    """One model's part in a comparison: `outcome` is win, tie, loss or error."""

    model: str
    status: str
    outcome: str
    total_score: float | None
    request_ids: list[str]


@dataclass(frozen=True)
class PairRow:
    """A pairwise outcome: `score_a` is 1 when model_a won, 0.5 for a draw, 0 when it lost."""

    model_a: str
    model_b: str
    score_a: float


_OUTCOME_LABELS = (("win", "wins"), ("tie", "ties"), ("loss", "losses"), ("error", "errors"))


class ComparisonRepository:
    """Stores a comparison with its entries and pairs atomically, and answers history queries."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(
        self, *, prompt: str, models: list[str], winner: str | None, tie: bool, wall_time: float | None,
        total_cost: float | None, result: dict[str, Any], entries: list[EntryRow], pairs: list[PairRow],
    ) -> int:
        now = utcnow()
        with write(self.engine) as conn:
            comparison_id = inserted_id(conn.execute(comparisons.insert().values(
                created_at=now, prompt=prompt, models=models, winner=winner, tie=tie,
                wall_time=wall_time, total_cost=total_cost, result=result,
            )))
            if entries:
                conn.execute(comparison_entries.insert(), [
                    {"comparison_id": comparison_id, "model": e.model, "status": e.status, "outcome": e.outcome,
                     "total_score": e.total_score, "request_ids": e.request_ids} for e in entries
                ])
            if pairs:
                conn.execute(comparison_pairs.insert(), [
                    {"comparison_id": comparison_id, "created_at": now, "model_a": p.model_a,
                     "model_b": p.model_b, "score_a": p.score_a} for p in pairs
                ])
        return comparison_id

    def get(self, comparison_id: int) -> dict[str, Any] | None:
        with read(self.engine) as conn:
            row = conn.execute(select(comparisons).where(comparisons.c.id == comparison_id)).mappings().first()
        return _comparison_dict(row) if row else None

    def list(self, limit: int = 50, *, model: str | None = None) -> list[dict[str, Any]]:
        """Newest first; `model` keeps the comparisons that model entered."""
        query = select(comparisons).order_by(comparisons.c.id.desc()).limit(limit)
        if model is not None:
            entered = select(comparison_entries.c.comparison_id).where(comparison_entries.c.model == model)
            query = query.where(comparisons.c.id.in_(entered))
        with read(self.engine) as conn:
            return [_comparison_dict(row) for row in conn.execute(query).mappings()]

    def entry_counts(self) -> dict[str, dict[str, int]]:
        """Per model: comparisons entered, wins, ties, losses and errors."""
        outcome = comparison_entries.c.outcome
        query = select(
            comparison_entries.c.model,
            func.count().label("comparisons"),
            *(func.sum(case((outcome == name, 1), else_=0)).label(label) for name, label in _OUTCOME_LABELS),
        ).group_by(comparison_entries.c.model)
        with read(self.engine) as conn:
            return {
                row["model"]: {key: int(row[key] or 0) for key in ("comparisons", *(lbl for _, lbl in _OUTCOME_LABELS))}
                for row in conn.execute(query).mappings()
            }

    def pairs(self) -> builtins.list[PairRow]:
        """Every pairwise outcome in the order it happened, for replaying ratings."""
        query = select(comparison_pairs.c.model_a, comparison_pairs.c.model_b, comparison_pairs.c.score_a)
        with read(self.engine) as conn:
            rows = conn.execute(query.order_by(comparison_pairs.c.id)).all()
        return [PairRow(a, b, float(score)) for a, b, score in rows]


def _comparison_dict(row: Any) -> dict[str, Any]:
    created = row["created_at"]
    return {
        "id": int(row["id"]),
        "created_at": created.isoformat() + "Z" if isinstance(created, datetime) else created,
        **row["result"],
        "winner": row["winner"],
        "tie": bool(row["tie"]),
    }

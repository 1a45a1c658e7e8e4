"""Reads and writes A/B experiments; every method is one unit of work, race-free under concurrent writers."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, case, func, select, update

from ab_testing.tables import (
    experiment_assignments,
    experiment_exposures,
    experiment_metric_values,
    experiment_results,
    experiment_variants,
    experiments,
)
from storage.clock import utcnow
from storage.database import inserted_id, read, upsert_into, write

# Per (variant, metric): sums over outcomes with a pre-period value x of the metric y (`cuped.CovariateSums`).
COVARIATE_SUMS = ("sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy")


class ExperimentMissing(LookupError):
    """No experiment has that id."""


class ExperimentStatusConflict(Exception):
    """The experiment is not in a status that allows the write; carries the status it is in."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def insert_ignore(conn: Connection, table: Table, values: Mapping[str, Any], conflict: Sequence[str]) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL; the new id, or None when a row existed."""
    statement = upsert_into(conn, table).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    return conn.execute(statement.returning(table.c.id)).scalar()


class ExperimentStore:
    """Experiments with their variants, sticky assignments, exposures, results and metric values."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, values: Mapping[str, Any], variants: Iterable[Mapping[str, Any]]) -> int:
        now = utcnow()
        with write(self.engine) as conn:
            experiment_id = inserted_id(conn.execute(
                experiments.insert().values(**values, created_at=now, updated_at=now,
                                            started_at=now if values.get("status") == "running" else None)
            ))
            for position, variant in enumerate(variants):
                conn.execute(experiment_variants.insert().values(experiment_id=experiment_id, position=position,
                                                                 **variant))
        return experiment_id

    def get(self, experiment_id: int) -> dict[str, Any] | None:
        """The experiment row with its variants (in creation order), or None."""
        with read(self.engine) as conn:
            return _get(conn, experiment_id)

    def routing_state(self, experiment_id: int, user_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """The experiment and the user's stored variant, read together in one unit of work."""
        with read(self.engine) as conn:
            return _get(conn, experiment_id), _assignment(conn, experiment_id, user_id)

    def list(self) -> list[dict[str, Any]]:
        """All experiments, newest first, each with its variants."""
        with read(self.engine) as conn:
            rows = conn.execute(select(experiments).order_by(experiments.c.id.desc())).mappings().all()
            variants = conn.execute(
                select(experiment_variants).order_by(experiment_variants.c.experiment_id,
                                                     experiment_variants.c.position)
            ).mappings().all()
        by_experiment: dict[int, list[Any]] = {}
        for variant in variants:
            by_experiment.setdefault(variant["experiment_id"], []).append(variant)
        return [_experiment_dict(row, by_experiment.get(row["id"], [])) for row in rows]

    def transition(self, experiment_id: int, target: str, allowed_from: Iterable[str]) -> None:
        """Move to `target` only from an allowed status, atomically; raises when missing or not allowed."""
        now = utcnow()
        values: dict[str, Any] = {"status": target, "updated_at": now}
        if target == "running":
            values["started_at"] = func.coalesce(experiments.c.started_at, now)
        if target == "completed":
            values["completed_at"] = now
        with write(self.engine) as conn:
            changed = conn.execute(
                update(experiments).where(experiments.c.id == experiment_id,
                                          experiments.c.status.in_(list(allowed_from))).values(**values)
            ).rowcount
            if not changed:
                raise ExperimentStatusConflict(_locked_status(conn, experiment_id))

    def set_weights(self, experiment_id: int, weights: Mapping[str, float], closed: Iterable[str]) -> None:
        """Change variant weights unless the experiment is in a `closed` status; stored assignments stay."""
        with write(self.engine) as conn:
            status = _locked_status(conn, experiment_id)
            if status in set(closed):
                raise ExperimentStatusConflict(status)
            for name, weight in weights.items():
                conn.execute(update(experiment_variants).where(
                    experiment_variants.c.experiment_id == experiment_id, experiment_variants.c.name == name
                ).values(weight=weight))
            conn.execute(update(experiments).where(experiments.c.id == experiment_id).values(updated_at=utcnow()))

    def assign(self, experiment_id: int, user_id: str, variant: str) -> str:
        """Store `variant` for the user unless one is stored already; returns the stored (winning) variant."""
        with write(self.engine) as conn:
            if insert_ignore(conn, experiment_assignments, {
                "experiment_id": experiment_id, "user_id": user_id, "variant": variant, "created_at": utcnow(),
            }, ("experiment_id", "user_id")) is not None:
                return variant
            stored = _assignment(conn, experiment_id, user_id)
        assert stored is not None
        return stored

    def exposure(self, request_id: str) -> dict[str, Any] | None:
        """The exposure a call made (experiment, variant, user), found by the call's request id."""
        query = select(experiment_exposures).where(experiment_exposures.c.request_id == request_id)
        with read(self.engine) as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def add_exposure(self, experiment_id: int, variant: str, user_id: str | None, request_id: str, status: str,
                     metrics: Mapping[str, float]) -> int:
        """Record that a user was served `variant` by call `request_id`, with the call's metrics."""
        now = utcnow()
        with write(self.engine) as conn:
            exposure_id = inserted_id(conn.execute(experiment_exposures.insert().values(
                experiment_id=experiment_id, variant=variant, user_id=user_id, request_id=request_id,
                status=status, created_at=now,
            )))
            rows = [_metric_row(experiment_id, variant, name, value, now, exposure_id=exposure_id)
                    for name, value in metrics.items() if value is not None]
            if rows:
                conn.execute(experiment_metric_values.insert(), rows)
        return exposure_id

    def add_results(self, experiment_id: int, results: Sequence[Mapping[str, Any]],
                    accept_status: str) -> builtins.list[tuple[int, bool]]:
        """Insert results (all or none) while the experiment is in `accept_status`.

        Returns (result id, duplicate) per input, in order: a repeated `outcome_id` is not stored again.
        """
        now = utcnow()
        rows = [{"experiment_id": experiment_id, "variant": r["variant"], "outcome_id": r.get("outcome_id"),
                 "success": bool(r["success"]), "rating": r.get("rating"), "created_at": now} for r in results]
        written: list[tuple[int, bool] | None] = [None] * len(rows)
        with write(self.engine) as conn:
            status = _locked_status(conn, experiment_id, shared=True)
            if status != accept_status:
                raise ExperimentStatusConflict(status)
            keyed = [i for i, row in enumerate(rows) if row["outcome_id"] is not None]
            for i in keyed:
                new_id = insert_ignore(conn, experiment_results, rows[i], ("experiment_id", "outcome_id"))
                written[i] = (int(new_id), False) if new_id is not None else (
                    _result_id(conn, experiment_id, rows[i]["outcome_id"]), True)
            plain = [i for i, row in enumerate(rows) if row["outcome_id"] is None]
            if plain:  # one multi-row INSERT ... RETURNING, ids in input order
                ids = conn.execute(experiment_results.insert().returning(
                    experiment_results.c.id, sort_by_parameter_order=True), [rows[i] for i in plain]).scalars()
                for i, new_id in zip(plain, ids, strict=True):
                    written[i] = (int(new_id), False)
            done = [w for w in written if w is not None]
            assert len(done) == len(rows), "every result has its id"
            metric_rows = [_metric_row(experiment_id, r["variant"], name, value, now, result_id=done[i][0],
                                       pre_period_value=(r.get("pre_period") or {}).get(name))
                           for i, r in enumerate(results) if not done[i][1]
                           for name, value in (r.get("metrics") or {}).items() if value is not None]
            if metric_rows:
                conn.execute(experiment_metric_values.insert(), metric_rows)
        return done

    def aggregates(self, experiment_id: int) -> dict[str, Any]:
        """Per-variant counts and sums that the analysis needs, computed in the database."""
        r, m = experiment_results, experiment_metric_values
        with read(self.engine) as conn:
            results = conn.execute(
                select(r.c.variant, func.count(), func.sum(case((r.c.success, 1), else_=0)),
                       func.count(r.c.rating), func.sum(r.c.rating), func.sum(r.c.rating * r.c.rating))
                .where(r.c.experiment_id == experiment_id).group_by(r.c.variant)
            ).all()
            metrics = conn.execute(
                select(m.c.variant, m.c.name, func.count(), func.sum(m.c.value), func.sum(m.c.value * m.c.value))
                .where(m.c.experiment_id == experiment_id).group_by(m.c.variant, m.c.name)
            ).all()
            paired = m.c.pre_period_value
            covariate_rows = conn.execute(
                select(m.c.variant, m.c.name, func.count(), func.sum(paired), func.sum(m.c.value),
                       func.sum(paired * paired), func.sum(m.c.value * m.c.value), func.sum(paired * m.c.value))
                .where(m.c.experiment_id == experiment_id, paired.is_not(None)).group_by(m.c.variant, m.c.name)
            ).all()
            assigned = _counts(conn, experiment_assignments, experiment_id)
            exposed = _counts(conn, experiment_exposures, experiment_id)
        outcome_sums = {
            row[0]: {"n": int(row[1]), "successes": int(row[2] or 0), "rating": _sums(row[3], row[4], row[5])}
            for row in results
        }
        metric_sums: dict[str, dict[str, dict[str, float]]] = {}
        for variant, name, n, total, total_sq in metrics:
            metric_sums.setdefault(variant, {})[name] = _sums(n, total, total_sq)
        covariates: dict[str, dict[str, dict[str, float]]] = {}
        for variant, name, n, *sums in covariate_rows:
            covariates.setdefault(variant, {})[name] = {
                "n": int(n), **{key: float(total or 0.0) for key, total in zip(COVARIATE_SUMS, sums, strict=True)}}
        return {"results": outcome_sums, "metrics": metric_sums, "covariates": covariates, "assignments": assigned,
                "exposures": exposed}


def _sums(n: Any, total: Any, total_sq: Any) -> dict[str, float]:
    return {"n": int(n or 0), "sum": float(total or 0.0), "sum_sq": float(total_sq or 0.0)}


def _counts(conn: Connection, table: Table, experiment_id: int) -> dict[str, int]:
    rows = conn.execute(select(table.c.variant, func.count()).where(table.c.experiment_id == experiment_id)
                        .group_by(table.c.variant)).all()
    return {variant: int(count) for variant, count in rows}


def _metric_row(experiment_id: int, variant: str, name: str, value: float, now: datetime,
                **link: float | None) -> dict[str, Any]:
    return {"experiment_id": experiment_id, "variant": variant, "name": name, "value": float(value),
            "created_at": now, "result_id": None, "exposure_id": None, "pre_period_value": None, **link}


def _locked_status(conn: Connection, experiment_id: int, *, shared: bool = False) -> str:
    """The experiment's status, row-locked on PostgreSQL so no status change can slip in before commit.

    `shared` lets concurrent writers of results proceed together; SQLite's write transaction serializes anyway.
    """
    status = conn.execute(
        select(experiments.c.status).where(experiments.c.id == experiment_id).with_for_update(read=shared)
    ).scalar()
    if status is None:
        raise ExperimentMissing(experiment_id)
    return str(status)


def _get(conn: Connection, experiment_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(experiments).where(experiments.c.id == experiment_id)).mappings().first()
    if row is None:
        return None
    variants = conn.execute(
        select(experiment_variants).where(experiment_variants.c.experiment_id == experiment_id)
        .order_by(experiment_variants.c.position)
    ).mappings().all()
    return _experiment_dict(row, variants)


def _assignment(conn: Connection, experiment_id: int, user_id: str) -> str | None:
    return conn.execute(select(experiment_assignments.c.variant).where(
        experiment_assignments.c.experiment_id == experiment_id, experiment_assignments.c.user_id == user_id,
    )).scalar()


def _result_id(conn: Connection, experiment_id: int, outcome_id: str) -> int:
    return int(conn.execute(select(experiment_results.c.id).where(
        experiment_results.c.experiment_id == experiment_id, experiment_results.c.outcome_id == outcome_id,
    )).scalar_one())


def _experiment_dict(row: Mapping[Any, Any], variants: Iterable[Mapping[Any, Any]]) -> dict[str, Any]:
    data = dict(row)
    for key in ("created_at", "updated_at", "started_at", "completed_at"):
        if isinstance(data.get(key), datetime):
            data[key] = data[key].isoformat() + "Z"
    data["variants"] = [
        {"name": v["name"], "model": v["model"], "weight": v["weight"], "params": v["params"] or {},
         **({"prompt_ref": v["prompt_ref"]} if v["prompt_ref"] else {})}
        for v in variants
    ]
    return data

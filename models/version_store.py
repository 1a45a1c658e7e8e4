"""The `model_versions` table: every configuration a model has had, its semver, stage and origin.

Each write is one transaction that reads the model's versions (locked on PostgreSQL, under the writer lock on
SQLite) and then writes, so two workers never give one version number to two configurations: a race that still
collides on the unique (model, version) is retried on the winner's rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Connection, DateTime, Engine, Integer, String, Table, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError

from core.errors import NotFoundError
from models.versions import DEPRECATED, PRODUCTION, Configuration, change_kind, check_move, next_version, parse_semver
from storage.clock import utcnow
from storage.database import metadata, read, write

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("version", String(32), nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("configuration", JSON, nullable=False),
    Column("stage", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(20), nullable=False),  # startup, api, cli or rollback
    Column("restores", String(32)),  # a rollback: the version whose configuration it brings back
    Column("promoted_at", DateTime),  # when it last became the production version
    UniqueConstraint("model", "version", name="uq_model_versions_model_version"),
)

# Attempts at a write that lost a race on the unique (model, version) to another worker.
WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class VersionRow:
    model: str
    version: str
    config_hash: str
    configuration: Configuration
    stage: str
    created_at: datetime
    created_by: str
    restores: str | None
    promoted_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> VersionRow:
        values = dict(row)
        values.pop("id")
        return cls(**{**values, "configuration": Configuration.from_dict(values["configuration"])})

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "stage": self.stage, "config_hash": self.config_hash,
                "configuration": self.configuration.to_dict(), "created_at": _iso(self.created_at),
                "created_by": self.created_by, "restores": self.restores, "promoted_at": _iso(self.promoted_at)}


class VersionStore:
    """Reads and writes `model_versions`; each method is its own unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def history(self, model: str) -> list[VersionRow]:
        """The model's versions, oldest first."""
        with read(self.engine) as conn:
            return _versions(conn, model)

    def get(self, model: str, version: str) -> VersionRow:
        """One version; NotFoundError (404 `unknown_version`) when the model has no such version."""
        return _find(self.history(model), model, version)

    def production(self, model: str | None = None) -> dict[str, VersionRow]:
        """Each model's production version (of `model` alone if given): what each model serves."""
        query = select(model_versions).where(model_versions.c.stage == PRODUCTION)
        if model is not None:
            query = query.where(model_versions.c.model == model)
        with read(self.engine) as conn:
            return {row.model: row for row in map(VersionRow.from_row, conn.execute(query).mappings())}

    def declared_is_recorded(self, model: str, configuration: Configuration) -> bool:
        """Whether the newest version recorded at start-up has this configuration: a read-only check, so an
        unchanged model costs each starting worker one query."""
        return _declared(self.history(model), configuration)

    def record(self, model: str, configuration: Configuration, *, stage: str, created_by: str,
               restores: str | None = None, unless_declared: bool = False) -> VersionRow | None:
        """Add a version after the model's highest, bumped by what changed since it; a `production` one
        replaces the current production version (which becomes deprecated).

        `unless_declared` (start-up) records nothing, and returns None, when the newest start-up version already
        has this configuration: another worker recorded it first.
        """
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with write(self.engine) as conn:
                    rows = _versions(conn, model, lock=True)
                    if unless_declared and _declared(rows, configuration):
                        return None
                    row = _next_version(rows, model, configuration, stage, created_by, restores)
                    if stage == PRODUCTION:
                        _retire_production(conn, model)
                    conn.execute(model_versions.insert().values(asdict(row)))  # configuration: a dict too
                    return row
            except IntegrityError:  # another worker took this version number first: read its rows and retry
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def move(self, model: str, version: str, stage: str) -> VersionRow:
        """Move a version to `stage` (409 for a move the lifecycle forbids); into production, it replaces the
        current production version, which becomes deprecated."""
        with write(self.engine) as conn:
            row = _find(_versions(conn, model, lock=True), model, version)
            check_move(version, row.stage, stage)
            changes: dict[str, Any] = {"stage": stage}
            if stage == PRODUCTION:
                _retire_production(conn, model)
                changes["promoted_at"] = utcnow()
            conn.execute(model_versions.update().where(_one(model, version)).values(**changes))
        return replace(row, **changes)


def _versions(conn: Connection, model: str, *, lock: bool = False) -> list[VersionRow]:
    query = select(model_versions).where(model_versions.c.model == model).order_by(model_versions.c.id)
    if lock:
        query = query.with_for_update()
    return [VersionRow.from_row(row) for row in conn.execute(query).mappings()]


def _declared(rows: list[VersionRow], configuration: Configuration) -> bool:
    """Whether the newest version recorded at start-up (the last declared configuration) is `configuration`."""
    declared = [row for row in rows if row.created_by == "startup"]
    return bool(declared) and declared[-1].config_hash == configuration.hash


def _next_version(rows: list[VersionRow], model: str, configuration: Configuration, stage: str, created_by: str,
                  restores: str | None) -> VersionRow:
    """The version after the highest of `rows`, bumped by how `configuration` differs from it."""
    latest = max(rows, key=lambda row: parse_semver(row.version), default=None)
    kind = change_kind(latest.configuration, configuration) if latest else None
    now = utcnow()
    return VersionRow(model=model, version=next_version(latest.version if latest else None, kind),
                      config_hash=configuration.hash, configuration=configuration, stage=stage, created_at=now,
                      created_by=created_by, restores=restores, promoted_at=now if stage == PRODUCTION else None)


def _find(rows: list[VersionRow], model: str, version: str) -> VersionRow:
    found = next((row for row in rows if row.version == version), None)
    if found is None:
        raise NotFoundError(f"{model} has no version {version}", code="unknown_version",
                            details={"model": model, "version": version})
    return found


def _retire_production(conn: Connection, model: str) -> None:
    conn.execute(model_versions.update()
                 .where(model_versions.c.model == model, model_versions.c.stage == PRODUCTION)
                 .values(stage=DEPRECATED))


def _one(model: str, version: str) -> Any:
    return (model_versions.c.model == model) & (model_versions.c.version == version)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat() + "Z"

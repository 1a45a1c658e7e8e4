"""Which version each registered model serves, kept in step with `model_versions` across workers.

The production version's configuration is what a model runs with. Registration records the declared configuration
as a new production version when it differs from the last one declared at start-up (the models file declares; an
API promotion overrides it until the file changes again), then applies the production version.

Other workers learn of a promotion cheaply: on SQLite a change stamp (`storage.change_stamp`, one `stat` per call),
elsewhere a re-read at most every `REFRESH_SECONDS`. The registry checks when it hands out a model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from core.errors import AppError, ConflictError, InvalidInputError
from models.base_model import BaseModel
from models.version_store import VersionRow, VersionStore
from models.versions import ARCHIVED, PRODUCTION, Configuration, check_applicable
from storage.change_stamp import ChangeStamp

log = logging.getLogger(__name__)

# Without a change stamp (PostgreSQL), how stale a worker's serving versions may be.
REFRESH_SECONDS = 5.0


class ModelVersions:
    """Records, promotes and rolls back versions of the models `models()` returns, and serves the production
    ones; a model whose serving version is archived, with none in production, refuses calls (409
    `version_archived`)."""

    def __init__(self, engine: Engine, models: Callable[[], dict[str, BaseModel]]) -> None:
        self.store = VersionStore(engine)
        self._models = models
        self._stamp = ChangeStamp(engine, "model-versions")
        self._lock = threading.Lock()
        self._seen: int | None = None
        self._next_check = 0.0

    def register(self, model: BaseModel) -> None:
        """Record `model`'s declared configuration if it is new (once, whichever worker starts first), then
        make the model serve its production version."""
        declared = Configuration.of(model)
        if not self.store.declared_is_recorded(model.name, declared):
            if self.store.record(model.name, declared, stage=PRODUCTION, created_by="startup", unless_declared=True):
                self._stamp.touch()
        self._serve(model, self.store.production(model.name).get(model.name))

    def history(self, name: str) -> list[VersionRow]:
        return self.store.history(name)

    def patch(self, model: BaseModel, changes: dict[str, Any], created_by: str) -> VersionRow:
        """A new `development` version: the model's current configuration with `changes`; it serves once
        promoted to production."""
        current = Configuration.of(model)
        configuration = current.changed(changes)
        if configuration.hash == current.hash:
            raise InvalidInputError.single("(body)", f"changes nothing: {model.name} already runs this configuration")
        params = configuration.prompt_params()
        if params is not None:
            model.check_params(params.only_generation())
        row = self.store.record(model.name, configuration, stage="development", created_by=created_by)
        assert row is not None  # only start-up records conditionally
        return row

    def promote(self, model: BaseModel, version: str, stage: str) -> VersionRow:
        """Move `version` to `stage`; into production, it serves from now on (here at once, elsewhere soon)."""
        if stage == PRODUCTION:
            target = self.store.get(model.name, version)
            check_applicable(model, target.configuration, version)
        row = self.store.move(model.name, version, stage)
        self._changed()
        return row

    def rollback(self, model: BaseModel) -> VersionRow:
        """Serve again the configuration of the version that was in production before the current one, recorded
        as a new production version (`created_by` rollback, `restores` naming it) so the history shows it."""
        rows = self.store.history(model.name)
        current = next((row for row in rows if row.stage == PRODUCTION), None)
        earlier = [row for row in rows if row.promoted_at is not None and row.stage != ARCHIVED
                   and row.stage != PRODUCTION and (current is None or row.config_hash != current.config_hash)]
        if not earlier:
            raise ConflictError(f"{model.name} has no earlier production version to roll back to",
                                code="nothing_to_roll_back", details={"model": model.name})
        target = max(earlier, key=lambda row: row.promoted_at or row.created_at)
        check_applicable(model, target.configuration, target.version)
        row = self.store.record(model.name, target.configuration, stage=PRODUCTION, created_by="rollback",
                                restores=target.version)
        assert row is not None
        self._changed()
        return row

    def refresh(self, *, force: bool = False) -> None:
        """Serve the production versions another worker promoted: cheap unless something changed. `force`: read
        them now (after a change made here), waiting for a refresh under way, which may predate the change."""
        stamp = self._stamp.version()
        if not force and ((stamp == self._seen) if stamp is not None else time.monotonic() < self._next_check):
            return
        if not self._lock.acquire(blocking=force):
            return  # another thread is refreshing
        try:
            self._seen, self._next_check = stamp, time.monotonic() + REFRESH_SECONDS
            production = self.store.production()
            for name, model in self._models().items():
                self._serve(model, production.get(name))
        finally:
            self._lock.release()

    def _changed(self) -> None:
        """After a commit here: tell the other workers, and serve the change in this one now."""
        self._stamp.touch()
        self.refresh(force=True)

    def _serve(self, model: BaseModel, row: VersionRow | None) -> None:
        if row is None:  # no production version: refused while its serving version is archived
            stages = {known.version: known.stage for known in self.store.history(model.name)}
            model.archived = model.version is not None and stages.get(model.version) == ARCHIVED
            return
        model.archived = False
        if model.version == row.version:
            return
        try:
            if Configuration.of(model).hash != row.config_hash:
                row.configuration.apply_to(model, row.version)
        except AppError:
            log.warning("%s cannot serve version %s here; it keeps version %s", model.name, row.version,
                        model.version, exc_info=True)
            return
        model.version = row.version


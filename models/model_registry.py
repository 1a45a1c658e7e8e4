"""The registry: name or alias -> model, every model bound to one recorded call path."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine

from core.settings import Settings, get_settings
from models.base_model import BaseModel
from models.call_path import CallHook, CallPath
from models.defaults import managed_call_path
from models.errors import UnknownModelError
from models.model_store import ModelStore
from models.pricing import PricingTable
from models.routing.group import ModelGroup
from models.version_manager import ModelVersions
from storage.database import engine_for

__all__ = ["ModelRegistry", "UnknownModelError"]


class ModelRegistry:
    """Holds the models the service can call; `ModelRegistry()` gives the default wiring."""

    def __init__(
        self,
        db_path: Engine | str | None = None,
        *,
        settings: Settings | None = None,
        pricing: PricingTable | None = None,
        hooks: Iterable[CallHook] = (),
        register_defaults: bool = True,
        call_path: CallPath | None = None,
    ) -> None:
        """Wired by the composition root for `settings` (default: the process settings), on the database
        `db_path` names if given (an Engine, a URL or, as originally, a SQLite file path).

        `hooks` are added to the standard ones; a `call_path` replaces the wiring altogether (for tests that
        drive their own guard).
        """
        self.settings = settings or get_settings()
        engine = None if db_path is None else engine_for(db_path, settings=self.settings)
        self.call_path = call_path or managed_call_path(self.settings, engine)
        for hook in hooks:
            self.call_path.add_hook(hook)
        self.call_path.resolve_model = self.require_model
        self.engine = self.call_path.request_log.engine
        self.pricing = pricing or PricingTable.for_settings(self.settings)
        self._store = ModelStore(self.engine)
        self._models: dict[str, BaseModel] = {}
        self._aliases: dict[str, str] = {}
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self.versions = ModelVersions(self.engine, lambda: self.models)
        if register_defaults:
            from models.defaults import register_default_models

            register_default_models(self)

    def register_model(self, model: BaseModel, aliases: Iterable[str] = ()) -> int:
        """Register (or replace) `model`; returns its persistent id.

        A model already serving another registry is registered as a copy, so the first registry's calls
        keep going through its own call path.
        """
        aliases = tuple(aliases)
        if model.is_bound and model.call_path is not self.call_path:
            model = copy.copy(model)
        model.bind(self.call_path)
        model_id = self._store.upsert(
            model.name, model.provider, aliases=list(aliases),
            capabilities=model.describe()["capabilities"],
            pricing=model.pricing.model_dump() if model.pricing else None,
        )
        self.versions.register(model)
        with self._lock:
            self._models[model.name] = model
            self._ids[model.name] = model_id
            for alias in aliases:
                self._aliases[alias] = model.name
        return model_id

    def add_hook(self, hook: CallHook) -> None:
        """Attach a guard/observer to every call of every registered model."""
        self.call_path.add_hook(hook)

    def resolve(self, name: str) -> str:
        """The canonical name for a name or alias."""
        with self._lock:
            canonical = self._aliases.get(name, name)
            if canonical in self._models:
                return canonical
            available = sorted(self._models)
        raise UnknownModelError(
            f"Unknown model {name!r}. Available: {', '.join(available) or '(none registered)'}",
            details={"model": name, "available": available},
        )

    def require_model(self, name: str | None = None) -> BaseModel:
        """The model registered under `name` or an alias of it (the default model when None); raises
        UnknownModelError (404 `unknown_model` in the API) for a name nobody registered.

        Serves the production version another worker may have promoted meanwhile (a cheap check)."""
        self.versions.refresh()
        canonical = self.resolve(name or self.default_model_name)
        with self._lock:
            return self._models[canonical]

    def get_model(self, name: str | None = None) -> BaseModel | None:
        """As originally: the model registered under `name` (or an alias), None when there is none."""
        try:
            return self.require_model(name)
        except UnknownModelError:
            return None

    def get_model_info(self, name: str) -> dict[str, Any] | None:
        """As originally: the model's name, provider and cost per token, None when there is no such model."""
        model = self.get_model(name)
        return model.get_info() if model is not None else None

    def get_model_id(self, name: str) -> int | None:
        """As originally: the model's id in the database (registered by any process), None when there is none."""
        with self._lock:
            canonical = self._aliases.get(name, name)
        return self._store.get_id(canonical)

    def deployment_names(self) -> list[str]:
        """The registered models that call a provider (groups route to these): what has health and a breaker."""
        with self._lock:
            return sorted(name for name, model in self._models.items() if not isinstance(model, ModelGroup))

    def list_models(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    @property
    def models(self) -> dict[str, BaseModel]:
        """The original attribute: registered models by name (a snapshot; `register_model` changes them)."""
        with self._lock:
            return dict(self._models)

    def model_id(self, name: str) -> int:
        canonical = self.resolve(name)
        with self._lock:
            return self._ids[canonical]

    def aliases_of(self, name: str) -> list[str]:
        with self._lock:
            return sorted(alias for alias, target in self._aliases.items() if target == name)

    @property
    def default_model_name(self) -> str:
        """DEFAULT_MODEL if set; else gemini-2.5-flash when a key is configured; else the local model."""
        if self.settings.default_model:
            return self.settings.default_model
        if self.settings.has_gemini_key and "gemini-2.5-flash" in self._models:
            return "gemini-2.5-flash"
        with self._lock:
            if "local" in self._aliases:
                return self._aliases["local"]
            return next(iter(sorted(self._models)), "local")

    def describe(self) -> list[dict[str, Any]]:
        """One entry per model, with aliases, capabilities and pricing, for `GET /api/models`."""
        return [
            {**self.require_model(name).describe(), "aliases": self.aliases_of(name), "id": self.model_id(name)}
            for name in self.list_models()
        ]

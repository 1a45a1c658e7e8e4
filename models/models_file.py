"""The models file (`MODELS_FILE`, default `models.yaml`): extra models declared as data, validated at start-up.

An invalid file stops start-up with a `ModelsFileError` naming the file, the entry and the field.
Keys never live in the file: `api_key_env` names the variable that holds one. Each entry's `provider` decides its
fields (`models.model_entries`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInputError
from core.settings import Settings, SettingsError
from models.model_entries import ModelEntry
from models.routing.group_config import GroupEntry, GroupProblem, register_groups

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry

log = logging.getLogger(__name__)


class ModelsFileError(SettingsError):
    """The models file is unreadable or invalid; the message names the file, the entry and the field."""


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry] = Field(default_factory=list)
    groups: list[GroupEntry] = Field(default_factory=list)


def load_models_file(path: str | Path) -> ModelsFile:
    """Read and validate `path`; raises `ModelsFileError` saying what to fix and where."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelsFileError(f"Models file {path} (MODELS_FILE) cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ModelsFileError(f"Models file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ModelsFileError(f"Models file {path}: expected a mapping with 'models' and/or 'groups' lists at the "
                              f"top level")
    try:
        declared = ModelsFile.model_validate(data)
    except ValidationError as exc:
        raise ModelsFileError(f"Invalid models file {path}: " + _describe(exc, data)) from None
    _check_unique(path, declared)
    return declared


def register_file_models(registry: ModelRegistry, settings: Settings) -> list[str]:
    """Register every model of `settings.models_file` with its aliases, then its groups (which may name any
    registered model); returns the names of both."""
    if not settings.models_file:
        return []
    declared = load_models_file(settings.models_file)
    registered = []
    for index, entry in enumerate(declared.models):
        model = entry.build(settings, entry.price(registry.pricing))
        if model is None:  # a Gemini model without its key, as the built-in ones
            continue
        try:
            entry.configure(model)
        except InvalidInputError as refused:
            where = _entry("models", index, {"name": entry.name})
            raise ModelsFileError(f"Invalid models file {settings.models_file}: " + "; ".join(
                f"{where}: field 'defaults.{f['field']}': {f['reason']}" for f in refused.fields)) from None
        registry.register_model(model, aliases=entry.aliases)
        registered.append(entry.name)
    try:
        register_groups(registry, declared.groups)
    except GroupProblem as problem:
        where = _entry("groups", problem.index, {"name": declared.groups[problem.index].name})
        raise ModelsFileError(f"Invalid models file {settings.models_file}: {where}: field '{problem.field}': "
                              f"{problem}") from None
    log.info("Registered %d model(s) and %d group(s) from %s", len(registered), len(declared.groups),
             settings.models_file)
    return registered + [group.name for group in declared.groups]


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """One clause per problem: `models[1] (name 'x'): field 'pricing.input_per_million': <why>`."""
    problems = []
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] in ("models", "groups") and isinstance(loc[1], int):
            raw = data[loc[0]][loc[1]]
            where = _entry(str(loc[0]), loc[1], raw)
            # A model entry's errors are located under its provider (the union's tag); a tag error is the provider's.
            fields = loc[3:] if len(loc) > 2 and isinstance(raw, dict) and loc[2] == raw.get("provider") else loc[2:]
            field = "provider" if error["type"].startswith("union_tag_") else ".".join(map(str, fields)) or "(entry)"
        else:
            where, field = "top level", ".".join(str(part) for part in loc) or "(file)"
        problems.append(f"{where}: field '{field}': {error['msg']}")
    return "; ".join(problems)


def _entry(section: str, index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"{section}[{index}] (name {name!r})" if isinstance(name, str) else f"{section}[{index}] (no name)"


def _check_unique(path: Path, declared: ModelsFile) -> None:
    """Model names, aliases and group names share one namespace: each may be declared once in the file."""
    seen: dict[str, str] = {}
    names = [(_entry("models", index, {"name": entry.name}), field, value)
             for index, entry in enumerate(declared.models)
             for field, value in [("name", entry.name), *(("aliases", alias) for alias in entry.aliases)]]
    names += [(_entry("groups", index, {"name": group.name}), "name", group.name)
              for index, group in enumerate(declared.groups)]
    for where, field, value in names:
        if value in seen:
            raise ModelsFileError(
                f"Invalid models file {path}: {where}: field '{field}': {value!r} is already declared by {seen[value]}")
        seen[value] = where

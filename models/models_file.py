"""The models file (`MODELS_FILE`, default `models.yaml`): extra models declared as data, validated at start-up.

An invalid file stops start-up with a `ModelsFileError` naming the file, the entry and the field.
Keys never live in the file: `api_key_env` names the variable that holds one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.settings import Settings, SettingsError
from models.cache.policy import CachePolicy
from models.openai_compatible import (
    DEFAULT_CONTEXT_WINDOW,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULT_TIMEOUT,
    OpenAICompatibleModel,
)
from models.openai_embeddings import OpenAICompatibleEmbeddingModel
from models.params import MAX_TOKENS_LIMIT
from models.pricing import ModelPricing
from models.routing.group_config import GroupEntry, GroupProblem, register_groups

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry

log = logging.getLogger(__name__)

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ModelsFileError(SettingsError):
    """The models file is unreadable or invalid; the message names the file, the entry and the field."""


class ModelEntry(BaseModel):
    """One declared model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    provider: Literal["openai_compatible"]
    kind: Literal["chat", "embeddings"] = "chat"  # an embedding model embeds and does not chat
    base_url: str
    model: str | None = Field(default=None, min_length=1)
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME)
    pricing: ModelPricing | None = None
    aliases: list[str] = Field(default_factory=list)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=20)
    context_window: int = Field(default=DEFAULT_CONTEXT_WINDOW, ge=1, le=100_000_000)
    max_output_tokens: int = Field(default=DEFAULT_MAX_OUTPUT_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)
    cache: CachePolicy | None = None  # the response cache for this model (off unless set, or CACHE_ENABLED)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8001/v1")
        return value

    @field_validator("aliases")
    @classmethod
    def _non_empty_aliases(cls, value: list[str]) -> list[str]:
        if any(not alias.strip() for alias in value):
            raise ValueError("aliases must be non-empty strings")
        return value


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


def build_model(entry: ModelEntry, settings: Settings, pricing: ModelPricing | None = None) -> OpenAICompatibleModel:
    """The model an entry declares, priced by `pricing` if given; its key is read from `api_key_env`."""
    api_key = settings.env_value(entry.api_key_env) if entry.api_key_env else None
    if entry.api_key_env and not api_key:
        log.warning("Models file: %s is not set, so calls to %r will fail until it is", entry.api_key_env, entry.name)
    model_class = OpenAICompatibleEmbeddingModel if entry.kind == "embeddings" else OpenAICompatibleModel
    return model_class(
        entry.name, base_url=entry.base_url, model=entry.model, api_key=api_key, api_key_env=entry.api_key_env,
        pricing=pricing or entry.pricing, timeout=entry.timeout, max_attempts=entry.max_attempts,
        stream_timeout=settings.stream_timeout,
        context_window=entry.context_window, max_output_tokens=entry.max_output_tokens,
    )


def register_file_models(registry: ModelRegistry, settings: Settings) -> list[str]:
    """Register every model of `settings.models_file` with its aliases, then its groups (which may name any
    registered model); returns the names of both."""
    if not settings.models_file:
        return []
    declared = load_models_file(settings.models_file)
    for entry in declared.models:
        model = build_model(entry, settings, entry.pricing or registry.pricing.get(entry.name))
        model.cache_policy = entry.cache
        registry.register_model(model, aliases=entry.aliases)
    try:
        register_groups(registry, declared.groups)
    except GroupProblem as problem:
        where = _entry("groups", problem.index, {"name": declared.groups[problem.index].name})
        raise ModelsFileError(f"Invalid models file {settings.models_file}: {where}: field '{problem.field}': "
                              f"{problem}") from None
    log.info("Registered %d model(s) and %d group(s) from %s", len(declared.models), len(declared.groups),
             settings.models_file)
    return [entry.name for entry in declared.models] + [group.name for group in declared.groups]


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """One clause per problem: `models[1] (name 'x'): field 'pricing.input_per_million': <why>`."""
    problems = []
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] in ("models", "groups") and isinstance(loc[1], int):
            where = _entry(str(loc[0]), loc[1], data[loc[0]][loc[1]])
            field = ".".join(str(part) for part in loc[2:]) or "(entry)"
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

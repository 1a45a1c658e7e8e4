"""Model versions: a model's (or group's) configuration as a hashable value, its automatic semver and its stages.

A configuration is what decides a model's answers and bills: provider and upstream model id, default parameters,
system prompt, pricing, and metadata (display name, capabilities). Versions are compared field by field, so the
version number says what kind of change it was: provider or upstream -> major, parameters or system prompt ->
minor, prices or metadata -> patch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.errors import ConflictError, InvalidInputError, validation_fields
from models.errors import CallRefusedError
from models.params import GenerationParams, PromptParams
from models.pricing import ModelPricing

if TYPE_CHECKING:
    from models.base_model import BaseModel

STAGES = ("development", "staging", "production", "deprecated", "archived")
PRODUCTION, DEPRECATED, ARCHIVED = "production", "deprecated", "archived"
# Where a version may go from each stage. The production version leaves production when another is promoted
# (it becomes deprecated), or when archived on purpose: the model then has no serving version and refuses calls.
MOVES: dict[str, frozenset[str]] = {
    "development": frozenset({"staging", PRODUCTION, ARCHIVED}),
    "staging": frozenset({"development", PRODUCTION, ARCHIVED}),
    PRODUCTION: frozenset({ARCHIVED}),
    DEPRECATED: frozenset({PRODUCTION, ARCHIVED}),
    ARCHIVED: frozenset(),  # archived is final: an archived configuration never serves again (roll back instead)
}
# Which configuration fields each kind of change touches, most significant first.
MAJOR_FIELDS = ("provider", "upstream")
MINOR_FIELDS = ("defaults", "system")
FIRST_VERSION = "1.0.0"


class VersionArchivedError(CallRefusedError):
    """The model's serving version was archived and no version replaced it in production."""

    code = "version_archived"
    http_status = 409

    def __init__(self, model: str, version: str | None) -> None:
        super().__init__(f"{model} version {version} is archived and no version is in production: promote one "
                         f"(POST /api/models/{model}/versions/<version>/promote)",
                         details={"model": model, "version": version, "production": None})


@dataclass(frozen=True)
class Configuration:
    """What a version fixes; `hash` is the sha256 of its canonical JSON, so equal configurations hash equally."""

    provider: str
    upstream: str | list[str]  # the provider's model id; a group's deployments
    defaults: dict[str, Any] = field(default_factory=dict)  # generation parameters, JSON-ready
    system: str | None = None
    pricing: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # display_name, capabilities

    @classmethod
    def of(cls, model: BaseModel) -> Configuration:
        """The configuration `model` runs with now."""
        defaults = model.defaults.given() if model.defaults is not None else {}
        deployments = getattr(model, "deployments", None)
        upstream = [d.model.name for d in deployments] if deployments is not None else getattr(
            model, "upstream_model", model.name)
        return cls(
            provider=model.provider, upstream=upstream,
            defaults={name: value for name, value in defaults.items() if name != "system"},
            system=defaults.get("system"),
            pricing=model.pricing.model_dump(mode="json", exclude_none=True) if model.pricing else None,
            metadata={"display_name": model.display_name, "capabilities": asdict(model.capabilities)},
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Configuration:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def changed(self, changes: dict[str, Any]) -> Configuration:
        """This configuration with `changes` (an API or CLI edit): `defaults` and `pricing` are merged key by key
        (a null value removes a default; a null `pricing` removes the prices), `system` and `display_name` replace.
        Invalid values raise `InvalidInputError` naming them."""
        updated = self
        if "defaults" in changes:
            merged = {**self.defaults, **changes["defaults"]}
            values = {name: value for name, value in merged.items() if value is not None}
            updated = replace(updated, defaults=GenerationParams.parse(values, prefix="defaults.").given())
        if "system" in changes:
            updated = replace(updated, system=changes["system"])
        if "pricing" in changes:
            prices = changes["pricing"]
            updated = replace(updated, pricing=None if prices is None else _valid_pricing({**(self.pricing or {}),
                                                                                          **prices}))
        if "display_name" in changes:
            updated = replace(updated, metadata={**self.metadata, "display_name": changes["display_name"]})
        return updated

    def prompt_params(self) -> PromptParams | None:
        """The defaults and system prompt as a model's `defaults` (None when there are none)."""
        values = {**self.defaults, **({"system": self.system} if self.system is not None else {})}
        return PromptParams.model_validate(values) if values else None

    def apply_to(self, model: BaseModel, version: str) -> None:
        """Make `model` run with this configuration (`version`'s): its defaults, system prompt, pricing and display
        name (`check_applicable` first)."""
        check_applicable(model, self, version)
        model.defaults = self.prompt_params()
        model.pricing = ModelPricing.model_validate(self.pricing) if self.pricing else None
        model.display_name = self.metadata.get("display_name")


def check_applicable(model: BaseModel, configuration: Configuration, version: str) -> None:
    """Refuse (409 `version_not_applicable`) a configuration of another provider or upstream model: a running
    process cannot swap the client the models file built, so such a version serves only once the file says so."""
    live = Configuration.of(model)
    if (live.provider, live.upstream) != (configuration.provider, configuration.upstream):
        raise ConflictError(
            f"{model.name} runs {live.provider} {live.upstream!r}; version {version} needs {configuration.provider} "
            f"{configuration.upstream!r}: change the models file to serve it", code="version_not_applicable",
            details={"model": model.name, "version": version})


def _valid_pricing(values: dict[str, Any]) -> dict[str, Any]:
    try:
        return ModelPricing.model_validate(values).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        raise InvalidInputError(validation_fields(exc, "pricing.")) from None


def change_kind(old: Configuration, new: Configuration) -> str | None:
    """`major`, `minor` or `patch`: the most significant kind of difference; None when they are equal."""
    if old.hash == new.hash:
        return None
    if any(getattr(old, name) != getattr(new, name) for name in MAJOR_FIELDS):
        return "major"
    if any(getattr(old, name) != getattr(new, name) for name in MINOR_FIELDS):
        return "minor"
    return "patch"


def parse_semver(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def next_version(latest: str | None, kind: str | None) -> str:
    """The version after `latest` for a change of `kind` (the first version is 1.0.0; an unchanged configuration
    recorded again, as a rollback to the current one would be, is a patch)."""
    if latest is None:
        return FIRST_VERSION
    major, minor, patch = parse_semver(latest)
    if kind == "major":
        return f"{major + 1}.0.0"
    if kind == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def check_move(version: str, current: str, target: str) -> None:
    """Refuse (409 `illegal_stage_move`) a stage change the lifecycle does not allow."""
    if target not in MOVES.get(current, frozenset()):
        allowed = sorted(MOVES.get(current, frozenset()))
        raise ConflictError(
            f"Version {version} is {current}; it can move to {', '.join(allowed) or 'no other stage'}, not {target}",
            code="illegal_stage_move", details={"version": version, "stage": current, "allowed": allowed})

"""What a rollout moves traffic between: models and groups, versions of one model, or versions of one prompt.

References, as `RolloutSpec.control` and `candidate` take them:
- `summarizer` (a model, group or alias): the control is what calls name; a candidate model or group takes
  them over, and keeps them once promoted (until the rollout is cancelled);
- `summarizer@1.1.0` (candidate only): a recorded version of the control model, run on a copy of the model with that
  version's defaults, system prompt and pricing; promoted to production through `ModelVersions.promote`;
- `prompt:greeting` (control) and `prompt:greeting@4` (candidate): calls rendering the prompt by its `production`
  label, and a version of it; promotion moves the `production` label.

A version after `@` is `major.minor.patch`, so model names holding `@` otherwise (`claude@20240620`) stay names.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from core.errors import ConflictError, InvalidInputError
from models.errors import UnknownModelError
from models.prompts.errors import PromptNotFoundError
from models.prompts.spec import DEFAULT_LABEL, PROMPT_NAME
from models.versions import MOVES, PRODUCTION, Configuration, check_applicable
from storage.ttl_cache import TtlCache

if TYPE_CHECKING:
    from models.base_model import BaseModel
    from models.model_registry import ModelRegistry
    from models.prompts.registry import PromptRegistry

PROMPT_PREFIX = "prompt:"
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
PROMPT_VERSION = re.compile(r"^[1-9]\d{0,8}$")
# A version's configuration never changes; the time only bounds how long those of finished rollouts stay in memory.
CONFIGURATION_CACHE_SECONDS = 600.0


@dataclass(frozen=True)
class Target:
    """One side of a rollout, parsed from its reference."""

    kind: Literal["model", "prompt"]
    name: str
    version: str | None = None  # model: major.minor.patch; prompt: the version number

    @classmethod
    def parse(cls, reference: str) -> Target:
        """The target `reference` names; a ValueError says what the syntax is."""
        if reference.startswith(PROMPT_PREFIX):
            name, at, version = reference.removeprefix(PROMPT_PREFIX).partition("@")
            if not re.match(PROMPT_NAME, name) or (at and not PROMPT_VERSION.match(version)):
                raise ValueError("a prompt is `prompt:<name>` or `prompt:<name>@<version>`, the version a number "
                                 "from 1")
            return cls("prompt", name, version or None)
        name, at, version = reference.rpartition("@")
        if at and name and SEMVER.match(version):
            return cls("model", name, version)
        return cls("model", reference)

    def __str__(self) -> str:
        prefix = PROMPT_PREFIX if self.kind == "prompt" else ""
        return f"{prefix}{self.name}" + (f"@{self.version}" if self.version is not None else "")

    def check_control(self) -> None:
        """A control is what calls name: a model or group as it serves now, or a prompt by its production label."""
        if self.version is not None:
            raise ValueError("the control is what calls name, as it serves now: leave out `@<version>` (a version "
                             "is a candidate)")

    def check_candidate(self, candidate: Target) -> None:
        """A prompt is replaced by a version of itself; a model by a model, a group or a version."""
        if self.kind == "prompt" and (candidate.kind != "prompt" or candidate.name != self.name
                                      or candidate.version is None):
            raise ValueError(f"a prompt's candidate is a version of it: `prompt:{self.name}@<version>`")
        if self.kind == "model" and candidate.kind == "prompt":
            raise ValueError("a model's candidate is a model, a group or `<model>@<major.minor.patch>`")


class RolloutTargets:
    """Checks references against what exists, serves a candidate model version, and promotes a candidate version."""

    def __init__(self, registry: ModelRegistry, prompts: PromptRegistry) -> None:
        self.registry = registry
        self.prompts = prompts
        self._configurations: TtlCache[Configuration] = TtlCache(CONFIGURATION_CACHE_SECONDS)

    def canonical(self, control: str, candidate: str) -> tuple[str, str]:
        """The stored references (models by their canonical names); InvalidInputError names the field at fault."""
        control_target, candidate_target = Target.parse(control), Target.parse(candidate)
        if control_target.kind == "prompt":
            self._check_prompt(control_target, candidate_target)
            return str(control_target), str(candidate_target)
        control_name = self._model_name("control", control_target.name)
        candidate_name = self._model_name("candidate", candidate_target.name)
        if candidate_target.version is None:
            if candidate_name == control_name:
                raise InvalidInputError.single("candidate", f"names the control's model {control_name!r}")
            return control_name, candidate_name
        if candidate_name != control_name:
            raise InvalidInputError.single("candidate", f"a version candidate is a version of the control's model "
                                                        f"{control_name!r}, not of {candidate_name!r}")
        self._check_version(control_name, candidate_target.version)
        return control_name, str(Target("model", control_name, candidate_target.version))

    def candidate_model(self, model: BaseModel, version: str) -> BaseModel:
        """A copy of `model` running `version`'s configuration (recorded with each call as its version); the
        model itself, which every other call uses, is left as it is."""
        configuration = self._configurations.get(
            (model.name, version), lambda: self.registry.versions.store.get(model.name, version).configuration)
        served = copy.copy(model)
        configuration.apply_to(served, version)
        served.version, served.archived = version, False
        return served

    def promote(self, candidate: Target) -> None:
        """Make a candidate version serve by itself: a model version into production, a prompt version labelled
        `production`."""
        if candidate.version is None:
            return
        if candidate.kind == "prompt":
            self.prompts.set_label(candidate.name, DEFAULT_LABEL, int(candidate.version))
        else:
            self.registry.versions.promote(self.registry.require_model(candidate.name), candidate.version, PRODUCTION)

    def _model_name(self, field: str, name: str) -> str:
        try:
            return self.registry.resolve(name)
        except UnknownModelError as exc:
            raise InvalidInputError.single(field, exc.message) from exc

    def _check_version(self, model_name: str, version: str) -> None:
        row = next((row for row in self.registry.versions.history(model_name) if row.version == version), None)
        if row is None:
            raise InvalidInputError.single("candidate", f"{model_name} has no version {version} (GET "
                                                        f"/api/models/{model_name}/versions lists them)")
        if row.stage == PRODUCTION:
            raise InvalidInputError.single("candidate", f"{model_name} serves version {version} already")
        if PRODUCTION not in MOVES[row.stage]:
            raise InvalidInputError.single("candidate", f"version {version} is {row.stage}: it can never serve")
        try:
            check_applicable(self.registry.require_model(model_name), row.configuration, version)
        except ConflictError as exc:
            raise InvalidInputError.single("candidate", exc.message) from exc

    def _check_prompt(self, control: Target, candidate: Target) -> None:
        try:
            prompt = self.prompts.describe(control.name)
        except PromptNotFoundError as exc:
            raise InvalidInputError.single("control", exc.message) from exc
        production = prompt["labels"].get(DEFAULT_LABEL)
        if production is None:
            raise InvalidInputError.single("control", f"prompt {control.name!r} has no `{DEFAULT_LABEL}` label to "
                                                      "move traffic from: set one first")
        number = int(candidate.version or 0)
        if number not in {version["version"] for version in prompt["versions"]}:
            raise InvalidInputError.single("candidate", f"prompt {control.name!r} has no version {number}")
        if number == production:
            raise InvalidInputError.single("candidate", f"version {number} has the `{DEFAULT_LABEL}` label already")

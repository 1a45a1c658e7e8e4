"""What a prompt version holds, and how a call names one: validated once for the API, the CLI and experiments."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from jinja2 import TemplateSyntaxError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from models.templating import UnsafeTemplateError, parse, variables

PROMPT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,49}$"
DEFAULT_LABEL = "production"
MAX_TEMPLATE = 100_000
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class PromptMessage(BaseModel):
    """One message of a chat prompt; its content is a template."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_TEMPLATE)


class PromptContent(BaseModel):
    """A version's content: one `template` (sent as the user message) or `messages`, and the variables they read.

    Every template is checked in the sandbox when pushed, and may read only the declared variables, so a call's
    variables can be checked against the declaration before anything renders.
    """

    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(default=None, min_length=1, max_length=MAX_TEMPLATE)
    messages: list[PromptMessage] | None = Field(default=None, min_length=1, max_length=100)
    variables: list[VariableName] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _check(self) -> PromptContent:
        if (self.template is None) == (self.messages is None):
            raise ValueError("give exactly one of `template` or `messages`")
        if len(set(self.variables)) != len(self.variables):
            raise ValueError("variables: each variable is declared once")
        read: set[str] = set()
        for template in self.templates():
            try:
                read |= variables(parse(template))
            except (UnsafeTemplateError, TemplateSyntaxError) as exc:
                raise ValueError(f"template refused: {getattr(exc, 'message', None) or exc}") from None
        undeclared = sorted(read - set(self.variables))
        if undeclared:
            raise ValueError(f"the template reads undeclared variables: {', '.join(undeclared)}")
        return self

    def templates(self) -> list[str]:
        return [self.template] if self.template is not None else [m.content for m in self.messages or ()]

    def stored(self) -> dict[str, Any]:
        """The columns of a version: the content as given, and its hash."""
        content = self.model_dump(include={"template", "messages", "variables"})
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        return {**content, "content_hash": digest}


class PromptSpec(PromptContent):
    """`POST /api/prompts` and each entry of a pushed YAML file."""

    name: str = Field(pattern=PROMPT_NAME)


class PromptTarget(BaseModel):
    """A prompt version by number, or by label (`production` when neither is given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=PROMPT_NAME)
    version: int | None = Field(default=None, ge=1, strict=True)
    label: str | None = Field(default=None, pattern=LABEL)

    @model_validator(mode="after")
    def _version_or_label(self) -> PromptTarget:
        if self.version is not None and self.label is not None:
            raise ValueError("give `version` or `label`, not both")
        return self

    @property
    def selector(self) -> str:
        """How the reference reads in messages: `v2` or `label production`."""
        return f"v{self.version}" if self.version is not None else f"label {self.label or DEFAULT_LABEL}"


class PromptRef(PromptTarget):
    """`prompt_ref` of a call: the version to render and the values of its variables."""

    variables: dict[str, Any] = Field(default_factory=dict, max_length=100)

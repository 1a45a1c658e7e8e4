"""PromptRegistry: push versions, move labels, and render a call's `prompt_ref` into messages in the sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from models.messages import GenerationRequest, Message, parse_messages
from models.params import CallContext
from models.prompts.errors import PromptVariablesError
from models.prompts.metrics import version_metrics
from models.prompts.spec import PromptRef, PromptSpec
from models.prompts.store import PromptStore
from models.templating import render


@dataclass(frozen=True)
class RenderedPrompt:
    """A version rendered with a call's variables: the conversation to send, and what the call records."""

    name: str
    version: int
    messages: list[Message]

    def on(self, context: CallContext) -> CallContext:
        """`context` recording this prompt, so the request log (and metrics) know which version was sent."""
        return context.model_copy(update={"prompt_name": self.name, "prompt_version": self.version})


class PromptRegistry:
    """The prompts of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = PromptStore(engine)

    def push(self, spec: PromptSpec, *, if_changed: bool = False) -> tuple[int, bool]:
        """Add a version of `spec.name` (version 1 of a new prompt); with `if_changed`, only when the content
        differs from the latest version. Returns (version, created)."""
        return self.store.add_version(spec.name, spec.stored(), if_changed=if_changed)

    def set_label(self, name: str, label: str, version: int) -> None:
        """Move (or create) `label` to `version`, atomically."""
        self.store.set_label(name, label, version)

    def describe(self, name: str) -> dict[str, Any]:
        return self.store.describe(name)

    def metrics(self, name: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
        self.store.describe(name)  # an unknown prompt is a 404, not an empty list
        return version_metrics(self.engine, name, since, until)

    def apply(self, ref: PromptRef, request: GenerationRequest,
              context: CallContext) -> tuple[GenerationRequest, CallContext]:
        """`request` with the rendered version as its conversation, and `context` recording the version."""
        rendered = self.render(ref)
        return replace(request, messages=tuple(rendered.messages)), rendered.on(context)

    def render(self, ref: PromptRef, *, field: str = "prompt_ref") -> RenderedPrompt:
        """The version `ref` names rendered with its variables; raises PromptNotFoundError, PromptVariablesError
        (naming each missing or undeclared variable) or TemplateRenderError."""
        version = self.store.resolve(ref)
        _check_variables(version["variables"], ref.variables, f"{field}.variables")
        contents = [{"role": "user", "content": version["template"]}] if "template" in version else version["messages"]
        messages = [{"role": m["role"], "content": render(m["content"], ref.variables)} for m in contents]
        return RenderedPrompt(ref.name, version["version"], parse_messages(messages, field_name=field))


def _check_variables(declared: list[str], given: Mapping[str, Any], field: str) -> None:
    problems = [{"field": f"{field}.{name}", "reason": "missing variable"}
                for name in declared if name not in given]
    problems += [{"field": f"{field}.{name}", "reason": "not a variable of this prompt version"}
                 for name in sorted(set(given) - set(declared))]
    if problems:
        raise PromptVariablesError(problems)

"""PromptRegistry: push versions, move labels, and render a call's `prompt_ref` into messages in the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from models.messages import GenerationRequest, Message, parse_messages
from models.params import CallContext
from models.prompts.errors import PromptVariablesError
from models.prompts.metrics import version_metrics
from models.prompts.spec import DEFAULT_LABEL, PromptRef, PromptSpec
from models.prompts.store import PromptStore
from models.templating import render

# A rollout of a prompt (`ab_testing.rollouts`): for a call naming `name` by its production label and made by `user`,
# the version to render instead (None: the label's own) and the tag recording the arm; None when none splits it.
PromptRouter = Callable[[str, str | None], tuple[int | None, str] | None]


@dataclass(frozen=True)
class RenderedPrompt:
    """A version rendered with a call's variables: the conversation to send, and what the call records."""

    name: str
    version: int
    messages: list[Message]
    tags: tuple[str, ...] = ()  # a prompt rollout's arm

    def on(self, context: CallContext) -> CallContext:
        """`context` recording this prompt, so the request log (and metrics) know which version was sent."""
        recorded = context.model_copy(update={"prompt_name": self.name, "prompt_version": self.version})
        return recorded.with_tags(*self.tags) if self.tags else recorded


class PromptRegistry:
    """The prompts of one database."""

    def __init__(self, engine: Engine, router: PromptRouter | None = None) -> None:
        self.engine = engine
        self.store = PromptStore(engine)
        self.router = router

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
        rendered = self.render(ref, user=context.user_id or context.api_key_id)
        return replace(request, messages=tuple(rendered.messages)), rendered.on(context)

    def render(self, ref: PromptRef, *, field: str = "prompt_ref", user: str | None = None) -> RenderedPrompt:
        """The version `ref` names (or, by the production label, the one a rollout sends `user` to) rendered with
        its variables; raises PromptNotFoundError, PromptVariablesError (naming each missing or undeclared
        variable) or TemplateRenderError."""
        ref, tags = self._routed(ref, user)
        version = self.store.resolve(ref)
        _check_variables(version["variables"], ref.variables, f"{field}.variables")
        contents = [{"role": "user", "content": version["template"]}] if "template" in version else version["messages"]
        messages = [{"role": m["role"], "content": render(m["content"], ref.variables)} for m in contents]
        return RenderedPrompt(ref.name, version["version"], parse_messages(messages, field_name=field), tags)

    def _routed(self, ref: PromptRef, user: str | None) -> tuple[PromptRef, tuple[str, ...]]:
        if self.router is None or ref.version is not None or (ref.label or DEFAULT_LABEL) != DEFAULT_LABEL:
            return ref, ()
        routed = self.router(ref.name, user)
        if routed is None:
            return ref, ()
        version, tag = routed
        return (ref if version is None else ref.model_copy(update={"version": version, "label": None})), (tag,)


def _check_variables(declared: list[str], given: Mapping[str, Any], field: str) -> None:
    problems = [{"field": f"{field}.{name}", "reason": "missing variable"}
                for name in declared if name not in given]
    problems += [{"field": f"{field}.{name}", "reason": "not a variable of this prompt version"}
                 for name in sorted(set(given) - set(declared))]
    if problems:
        raise PromptVariablesError(problems)

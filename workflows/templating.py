"""Sandboxed prompt templates: Jinja2 with StrictUndefined, the original `{input}` style, and static checks.

User-supplied templates never reach Python internals: any `_`-prefixed attribute or key is refused
when the template is checked, and the immutable sandbox refuses it again while rendering.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from workflows.errors import TemplateRenderError

RESERVED_NAMES = frozenset({"input", "workflow_input", "steps"})
MAX_REPEAT = 100_000
MAX_EXPONENT = 100

_JINJA_TAG = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_LEGACY_FIELD = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}")


class UnsafeTemplateError(ValueError):
    """A template tries to reach Python internals."""


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with no globals and bounded `*`/`**` so a template cannot exhaust memory or CPU."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent larger than {MAX_EXPONENT} is not allowed")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > MAX_REPEAT:
                    raise SecurityError(f"repetition longer than {MAX_REPEAT} is not allowed")
        return super().call_binop(context, operator, left, right)


ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
ENV.globals.clear()


def to_jinja(template: str) -> str:
    """Accept the original `str.format` style: `{input}` in plain text becomes `{{ input }}`; Jinja tags stay."""
    parts = _JINJA_TAG.split(template)  # odd indexes are Jinja tags, left untouched
    for index in range(0, len(parts), 2):
        parts[index] = _LEGACY_FIELD.sub(lambda m: "{{ " + m.group(1) + " }}", parts[index])
    return "".join(parts)


@dataclass
class References:
    """What a template or expression reads: top-level names and `steps.<name>` entries."""

    names: set[str] = field(default_factory=set)
    steps: set[str] = field(default_factory=set)


def analyze_template(template: str) -> References:
    """Parse and check a prompt template; raises TemplateSyntaxError or UnsafeTemplateError."""
    ast = ENV.parse(to_jinja(template))
    refs = collect_references(ast)
    refs.names = set(meta.find_undeclared_variables(ast))
    return refs


def collect_references(root: nodes.Node) -> References:
    """Refuse `_`-prefixed attributes and keys; collect the `steps.<name>` entries read."""
    refs = References()
    kinds = (nodes.Getattr, nodes.Getitem, nodes.Filter)
    for node in [root, *root.find_all(kinds)]:  # find_all skips the root itself, which an expression may be
        key = _static_key(node)
        if key is not None and key.startswith("_"):
            raise UnsafeTemplateError(f"access to {key!r} is not allowed")
        if isinstance(node, nodes.Getattr | nodes.Getitem) and _is_steps(node.node) and key is not None:
            refs.steps.add(key)
    return refs


def _static_key(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        arg = node.args[0]
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            return arg.value
    return None


def _is_steps(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "steps"


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render a checked template; any failure (missing value, sandbox refusal) is a step error."""
    try:
        return ENV.from_string(to_jinja(template)).render(context)
    except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateRenderError(f"template failed to render: {exc}") from exc

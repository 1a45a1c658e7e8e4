"""Sandboxed prompt templates: Jinja2 with StrictUndefined, the original `{input}` style, and static checks.

In the models layer so that every layer renders user templates the same way: workflow steps, and the prompt
registry that API calls, experiments and workflows name.

User-supplied templates never reach Python internals: any `_`-prefixed attribute or key is refused
when the template is checked, and the immutable sandbox refuses it again while rendering. They cannot
exhaust the server either: every value they build is bounded (`models.template_limits`), and a
render stops after RENDER_SECONDS (`models.deadline`). `{% include %}`, `{% import %}`,
`{% extends %}` and `{% autoescape %}` have no use in a prompt and are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, cast

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.visitor import NodeTransformer

from core.errors import AppError
from models import template_limits as limits
from models.deadline import DeadlineExceeded, deadline

RENDER_SECONDS = 1.0
REFUSED_TAGS = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import",
                nodes.Extends: "extends", nodes.ScopedEvalContextModifier: "autoescape"}

KEYED_NODES = (nodes.Getattr, nodes.Getitem, nodes.Filter)  # the nodes that can read an attribute or key by name
_JINJA_TAG = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_LEGACY_FIELD = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}")


class UnsafeTemplateError(ValueError):
    """A template tries to reach Python internals, uses a refused tag, or exceeds a limit with constants."""


class TemplateRenderError(AppError):
    """A template failed while rendering with the caller's values: the caller's template, so a 400."""

    code = "render_error"
    http_status = 400


class TemplateLimitError(TemplateRenderError):
    """A template would build more text than allowed, or render longer than allowed."""

    code = "template_limit"


class _Bounded(NodeTransformer):
    """Route what a template builds through the size checks: `~` and list, tuple and dict literals."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call("join_bounded", nodes.List(node.nodes), node)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        return _call("checked", cast(nodes.Expr, self.generic_visit(node)), node)

    visit_Dict = visit_List

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        visited = cast(nodes.Tuple, self.generic_visit(node))
        return _call("checked", visited, visited) if visited.ctx == "load" else visited


def _call(method: str, argument: nodes.Expr, origin: nodes.Node) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(method), [argument], [], None, None)
    call.set_lineno(origin.lineno)
    if origin.environment is not None:
        call.set_environment(origin.environment)
    return call


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox with no globals, bounded filters, operators, calls and output (see `template_limits`)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    checked = staticmethod(limits.checked)
    join_bounded = staticmethod(limits.join_bounded)
    concat = staticmethod(limits.concat_bounded)  # rendered output, macro and block bodies

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        return limits.checked(super().call(context, obj, *args, **kwargs), "a call")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in limits.AMPLIFYING_METHODS and super().is_safe_attribute(obj, attr, value)

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        return super()._generate(_Bounded().visit(source), name, filename, defer_init)


ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
ENV.globals.clear()
ENV.filters = limits.bounded_filters()


def to_jinja(template: str) -> str:
    """Accept the original `str.format` style: `{input}` in plain text becomes `{{ input }}`; Jinja tags stay."""
    parts = _JINJA_TAG.split(template)  # odd indexes are Jinja tags, left untouched
    for index in range(0, len(parts), 2):
        parts[index] = _LEGACY_FIELD.sub(lambda m: "{{ " + m.group(1) + " }}", parts[index])
    return "".join(parts)


def parse(template: str) -> nodes.Template:
    """Parse and check a template; raises TemplateSyntaxError or UnsafeTemplateError."""
    ast = ENV.parse(to_jinja(template))
    tag = next(ast.find_all(tuple(REFUSED_TAGS)), None)
    if tag is not None:
        raise UnsafeTemplateError(f"{{% {REFUSED_TAGS[type(tag)]} %}} is not supported in prompt templates")
    check_node(ast)
    return ast


def variables(ast: nodes.Template) -> set[str]:
    """The top-level names a parsed template reads."""
    return set(meta.find_undeclared_variables(ast))


def check_node(root: nodes.Node) -> None:
    """Refuse `_`-prefixed attributes and keys, unknown filters and constant arguments past a limit."""
    try:
        limits.check_static(root)
    except limits.LimitExceeded as exc:
        raise UnsafeTemplateError(str(exc)) from None
    for node in [root, *root.find_all(nodes.Filter)]:
        if isinstance(node, nodes.Filter) and node.name not in ENV.filters:
            raise UnsafeTemplateError(f"there is no filter named {node.name!r}")
    for node in [root, *root.find_all(KEYED_NODES)]:  # find_all skips the root itself, which an expression may be
        key = static_key(node)
        if key is not None and key.startswith("_"):
            raise UnsafeTemplateError(f"access to {key!r} is not allowed")


def static_key(node: nodes.Node) -> str | None:
    """The attribute or key a node reads by a constant name (`x.a`, `x['a']`, `x|attr('a')`), else None."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        arg = node.args[0]
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            return arg.value
    return None


@lru_cache(maxsize=256)
def _compiled(template: str) -> Template:
    return ENV.from_string(to_jinja(template))


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render a checked template within the limits; any failure (missing value, sandbox refusal) is a
    TemplateRenderError."""
    with bounded("template failed to render"):
        return _compiled(template).render(context)


@contextmanager
def bounded(failure: str) -> Iterator[None]:
    """Run template code under RENDER_SECONDS; a limit is a TemplateLimitError, any other failure `failure`."""
    try:
        with deadline(RENDER_SECONDS, traced_file="<template>"):
            yield
    except (limits.LimitExceeded, DeadlineExceeded, MemoryError, RecursionError) as exc:
        raise TemplateLimitError(f"{failure}: {exc or type(exc).__name__}") from None
    except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateRenderError(f"{failure}: {exc}") from exc

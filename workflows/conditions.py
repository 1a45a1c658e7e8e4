"""`when` conditions: Jinja2 expressions checked statically and evaluated in the sandbox, never with `eval`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import nodes
from jinja2.parser import Parser

from models.templating import ENV, bounded
from workflows.templating import References, collect_references


def analyze_expression(expression: str) -> References:
    """Parse and check a `when` expression; raises TemplateSyntaxError or UnsafeTemplateError."""
    parser = Parser(ENV, expression, state="variable")
    node = parser.parse_expression()
    if not parser.stream.eos:
        parser.fail("unexpected text after the expression")
    refs = collect_references(node)
    names = [node, *node.find_all(nodes.Name)]  # find_all skips the root, which may itself be a name
    refs.names = {n.name for n in names if isinstance(n, nodes.Name) and n.ctx == "load"}
    return refs


def evaluate(expression: str, context: Mapping[str, Any]) -> bool:
    """True when the step should run; a failure to evaluate is a step error, within the templates' limits."""
    with bounded(f"condition {expression!r} failed"):
        return bool(ENV.compile_expression(expression, undefined_to_none=False)(**context))

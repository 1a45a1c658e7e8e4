"""What workflow templates and conditions read: names, and `steps.<name>` entries of earlier steps.

The sandbox itself (parsing, checks, rendering within limits) is `models.templating`, shared with the prompt registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import nodes

from models.templating import KEYED_NODES, check_node, parse, static_key, variables

RESERVED_NAMES = frozenset({"input", "workflow_input", "steps"})


@dataclass
class References:
    """What a template or expression reads: top-level names and `steps.<name>` entries."""

    names: set[str] = field(default_factory=set)
    steps: set[str] = field(default_factory=set)


def analyze_template(template: str) -> References:
    """Parse and check a prompt template; raises TemplateSyntaxError or UnsafeTemplateError."""
    ast = parse(template)
    refs = collect_references(ast)
    refs.names = variables(ast)
    return refs


def collect_references(root: nodes.Node) -> References:
    """Check `root` in the sandbox's rules and collect the `steps.<name>` entries read."""
    check_node(root)
    refs = References()
    for node in [root, *root.find_all(KEYED_NODES)]:  # find_all skips the root itself, which an expression may be
        key = static_key(node)
        if isinstance(node, nodes.Getattr | nodes.Getitem) and _is_steps(node.node) and key is not None:
            refs.steps.add(key)
    return refs


def _is_steps(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "steps"

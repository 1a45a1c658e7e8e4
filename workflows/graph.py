"""Mermaid flowcharts of workflow definitions, for `GET /api/workflows/<name>/graph`."""

from __future__ import annotations

from workflows.definitions import StepDefinition, WorkflowDefinition


def mermaid(definition: WorkflowDefinition) -> str:
    """A top-down flowchart: input, one node per step (groups as subgraphs, conditions on edges), output.

    A stage whose steps all have a `when` may be skipped entirely; a dashed edge shows its input passing on.
    """
    lines = ["flowchart TD", '    input(["input"])']
    previous: list[str] = ["input"]
    bypass: list[str] = []
    for stage in definition.stages():
        steps = [definition.steps[p] for p in stage]
        group = steps[0].group if len(steps) > 1 else None
        if group:
            lines.append(f'    subgraph group_{group}["parallel: {_label(group)}"]')
        lines += [f"{'        ' if group else '    '}{_node(step, definition.model)}" for step in steps]
        if group:
            lines.append("    end")
        for step in steps:
            edge = f' -->|"when {_label(step.when)}"| ' if step.when else " --> "
            lines += [f"    {source}{edge}step_{step.name}" for source in previous]
            lines += [f"    {source} -.->|skipped| step_{step.name}" for source in bypass]
        skippable = all(step.when for step in steps)
        bypass = [*previous, *bypass] if skippable else []
        previous = [f"step_{step.name}" for step in steps]
    lines.append('    output(["final output"])')
    lines += [f"    {source} --> output" for source in previous]
    lines += [f"    {source} -.->|skipped| output" for source in bypass]
    return "\n".join(lines) + "\n"


def _node(step: StepDefinition, workflow_model: str | None) -> str:
    details = [step.model or workflow_model or "default model"]
    if step.parser.type != "text":
        details.append(f"parser: {step.parser.type}")
    if step.on_error.action != "fail":
        details.append(f"on error: {step.on_error.action}")
    return f'step_{step.name}["{_label(step.name or "")}<br/>{"<br/>".join(_label(d) for d in details)}"]'


def _label(text: str | None) -> str:
    """Mermaid-safe label text: quotes and angle brackets as entities."""
    return (text or "").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")

"""A workflow's steps laid out for an inline SVG (drawn by `dashboard/workflow_graph.html`): no JavaScript library.

Layers are the topological order the engine runs in: the input, then each stage (a parallel group side by side),
then the final output. A step depends on the stage before it (its `input`, solid arrows) and on any earlier step it
names as `steps.<name>` in its prompt, system prompt or condition (dashed arrows, around the boxes, when that
step is further back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from workflows.conditions import analyze_expression
from workflows.definitions import StepDefinition, WorkflowDefinition
from workflows.templating import analyze_template

BOX_WIDTH, BOX_HEIGHT, GAP_X, GAP_Y, MARGIN = 200, 44, 24, 48, 12
DETOUR_SPACING = 8
MAX_LABEL = 30
FILLS = {"succeeded": "#d8f0dc", "failed": "#f8d7da", "running": "#fff3cd", "interrupted": "#ffe5b4",
         "skipped": "#eceef1", "defaulted": "#e2e3f5"}
PLAIN_FILL = "#ffffff"
ENDPOINT_FILL = "#eef1f5"


@dataclass(frozen=True)
class Box:
    key: str  # the step's name; `input` / `output` for the ends
    label: str
    detail: str
    tooltip: str
    x: int
    y: int
    fill: str
    conditional: bool  # a step with `when`: drawn dashed


@dataclass(frozen=True)
class Arrow:
    path: str  # an SVG path, from the bottom of one box to the top of another
    dashed: bool


@dataclass(frozen=True)
class Graph:
    width: int
    height: int
    boxes: list[Box]
    arrows: list[Arrow]
    box_width: int = BOX_WIDTH
    box_height: int = BOX_HEIGHT


def layout(definition: WorkflowDefinition, statuses: Mapping[str, str] | None = None) -> Graph:
    """Boxes and arrows of `definition`; `statuses` (a run's, by step name) colour the step boxes."""
    steps = [[definition.steps[position] for position in stage] for stage in definition.stages()]
    widest = max(len(stage) for stage in steps)
    width = 2 * MARGIN + widest * BOX_WIDTH + (widest - 1) * GAP_X
    layers = [["input"], *([step.name or "" for step in stage] for stage in steps), ["output"]]
    places = {key: (_row_start(len(keys), width) + column * (BOX_WIDTH + GAP_X), MARGIN + row * (BOX_HEIGHT + GAP_Y))
              for row, keys in enumerate(layers) for column, key in enumerate(keys)}
    boxes = [_endpoint("input", "input", "the run's input", places), _endpoint("output", "final output",
                                                                               "the last stage's output", places)]
    boxes += [_step_box(step, definition.model, (statuses or {}).get(step.name or ""), places)
              for stage in steps for step in stage]
    arrows = [_arrow(places[source], places[target])
              for previous, current in pairwise(layers) for target in current for source in previous]
    layer_of = {key: row for row, keys in enumerate(layers) for key in keys}
    far = [(source, step.name or "") for stage in steps for step in stage for source in sorted(_named_steps(step))
           if source in layer_of and layer_of[source] < layer_of[step.name or ""] - 1]
    arrows += [_detour(places[source], places[target], width - MARGIN + GAP_X // 2 + index * DETOUR_SPACING, index)
               for index, (source, target) in enumerate(far)]
    width += (GAP_X + len(far) * DETOUR_SPACING) if far else 0
    return Graph(width, 2 * MARGIN + len(layers) * BOX_HEIGHT + (len(layers) - 1) * GAP_Y, boxes, arrows)


def _row_start(count: int, width: int) -> int:
    """The left edge of a row of `count` boxes centred in `width`."""
    return (width - count * BOX_WIDTH - (count - 1) * GAP_X) // 2


def _endpoint(key: str, label: str, tooltip: str, places: Mapping[str, tuple[int, int]]) -> Box:
    return Box(key, label, "", tooltip, *places[key], ENDPOINT_FILL, conditional=False)


def _step_box(step: StepDefinition, workflow_model: str | None, status: str | None,
              places: Mapping[str, tuple[int, int]]) -> Box:
    name = step.name or ""
    details = [step.model or workflow_model or "default model"]
    if step.group:
        details.append(f"group {step.group}")
    tooltip = [name, *details, *([f"when {step.when}"] if step.when else []), *([status] if status else [])]
    return Box(name, _short(name), _short(" · ".join(details)), "\n".join(tooltip), *places[name],
               FILLS.get(status or "", PLAIN_FILL), conditional=step.when is not None)


def _arrow(source: tuple[int, int], target: tuple[int, int]) -> Arrow:
    """From the bottom centre of one box to the top centre of the next layer's."""
    return Arrow(f"M{source[0] + BOX_WIDTH // 2} {source[1] + BOX_HEIGHT} L{target[0] + BOX_WIDTH // 2} {target[1]}",
                 dashed=False)


def _detour(source: tuple[int, int], target: tuple[int, int], gutter: int, index: int) -> Arrow:
    """An arrow skipping layers, dashed: it runs in the gaps between rows and down a gutter right of every box, so it
    crosses none; `index` spaces the detours apart."""
    x1, y1 = source[0] + BOX_WIDTH // 2 + index * DETOUR_SPACING, source[1] + BOX_HEIGHT
    x2, y2 = target[0] + BOX_WIDTH // 2 + (index + 1) * DETOUR_SPACING, target[1]
    below, above = y1 + GAP_Y // 2 - index * 4, y2 - GAP_Y // 2 + index * 4
    return Arrow(f"M{x1} {y1} V{below} H{gutter} V{above} H{x2} V{y2}", dashed=True)


def _named_steps(step: StepDefinition) -> set[str]:
    """The earlier steps `step` reads as `steps.<name>` (the definition was checked when saved or run)."""
    names: set[str] = set()
    for _, text in step.templates("step"):
        names |= analyze_template(text).steps
    return names | (analyze_expression(step.when).steps if step.when else set())


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "…"

"""Workflow and step definitions (pydantic), and the checks that run before any model is called."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from jinja2 import TemplateSyntaxError
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.patterns import Pattern
from models.params import GenerationParams, MaxTokens
from models.prompts.spec import PromptTarget
from models.templating import UnsafeTemplateError
from workflows import parsers
from workflows.conditions import analyze_expression
from workflows.errors import WorkflowValidationError
from workflows.templating import RESERVED_NAMES, References, analyze_template

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
WORKFLOW_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class ParserSpec(BaseModel):
    """How a step's answer becomes its output: `text` (default), `json` (+ JSON Schema) or `regex`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["text", "json", "regex"] = "text"
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    pattern: str | None = Field(default=None, max_length=2000)
    group: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        """An invalid pattern is reported under `pattern` itself."""
        if pattern is not None:
            Pattern(pattern)
        return pattern

    @model_validator(mode="after")
    def _check(self) -> ParserSpec:
        if self.json_schema is not None:
            if self.type != "json":
                raise ValueError("`schema` applies to the json parser only")
            parsers.check_schema(self.json_schema)
        if self.type == "regex":
            if not self.pattern:
                raise ValueError("the regex parser needs a `pattern`")
            parsers.check_pattern(self.pattern, self.group)
        elif self.pattern is not None or self.group is not None:
            raise ValueError("`pattern` and `group` apply to the regex parser only")
        return self

    def parse(self, text: str) -> parsers.ParsedOutput:
        """Apply this parser; raises OutputParseError."""
        if self.type == "json":
            return parsers.parse_json(text, self.json_schema)
        if self.type == "regex":
            return parsers.parse_regex(text, self.pattern or "", self.group)
        return parsers.parse_text(text)


class ErrorPolicy(BaseModel):
    """What a failing step does: fail the run, retry, fall back to another model, or continue with a default."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["fail", "retry", "fallback", "continue"] = "fail"
    retries: int = Field(default=0, ge=0, le=10)
    fallback_model: str | None = None
    default: str = ""

    @model_validator(mode="after")
    def _check(self) -> ErrorPolicy:
        if self.action == "retry" and self.retries == 0:
            raise ValueError("the retry policy needs `retries` >= 1")
        if self.action == "fallback" and not self.fallback_model:
            raise ValueError("the fallback policy needs a `fallback_model`")
        return self


class StepPromptRef(PromptTarget):
    """A registry prompt instead of a step's template; each variable's value is a template of the run's values."""

    variables: dict[str, Annotated[str, Field(max_length=100_000)]] = Field(default_factory=dict, max_length=100)


class StepDefinition(GenerationParams):
    """One model call: model, prompt template (or registry prompt), generation params, output parser, error policy,
    condition, group."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(default=None, pattern=IDENTIFIER)
    model: str | None = Field(default=None, max_length=200)
    prompt_template: str | None = Field(default=None, min_length=1, max_length=100_000,
                                        validation_alias=AliasChoices("prompt_template", "prompt"))
    prompt_ref: StepPromptRef | None = None
    system: str | None = Field(default=None, max_length=100_000)
    parser: ParserSpec = Field(default_factory=ParserSpec)
    on_error: ErrorPolicy = Field(default_factory=ErrorPolicy)
    when: str | None = Field(default=None, min_length=1, max_length=2000)
    group: str | None = Field(default=None, pattern=IDENTIFIER)

    @field_validator("parser", "on_error", mode="before")
    @classmethod
    def _shorthand(cls, value: object, info: ValidationInfo) -> object:
        """Accept `"parser": "json"` and `"on_error": "continue"`."""
        if isinstance(value, str):
            return {"type": value} if info.field_name == "parser" else {"action": value}
        return value

    @model_validator(mode="after")
    def _template_or_prompt_ref(self) -> StepDefinition:
        if (self.prompt_template is None) == (self.prompt_ref is None):
            raise ValueError("give exactly one of `prompt_template` or `prompt_ref`")
        return self

    def templates(self, where: str) -> list[tuple[str, str]]:
        """(field, template) of what the step renders before its call: its prompt (or its prompt's variables)
        and its system prompt."""
        if self.prompt_ref is None:
            found = [(f"{where}.prompt_template", self.prompt_template or "")]
        else:
            found = [(f"{where}.prompt_ref.variables.{name}", value)
                     for name, value in self.prompt_ref.variables.items()]
        return found + ([(f"{where}.system", self.system)] if self.system else [])


class WorkflowDefinition(BaseModel):
    """A named list of steps; consecutive steps sharing a `group` run in parallel."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=WORKFLOW_NAME)
    description: str = Field(default="", max_length=2000)
    model: str | None = Field(default=None, max_length=200)
    max_tokens: MaxTokens | None = None  # for steps that set none
    variables: dict[str, str] = Field(default_factory=dict)
    steps: list[StepDefinition] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _step_defaults(self) -> WorkflowDefinition:
        for index, step in enumerate(self.steps, 1):
            if step.name is None:
                step.name = f"step_{index}"
            if step.max_tokens is None:
                step.max_tokens = self.max_tokens
        return self

    def stages(self) -> list[list[int]]:
        """Step positions grouped into stages: a parallel group is one stage, any other step its own."""
        stages: list[list[int]] = []
        for position, step in enumerate(self.steps):
            previous = self.steps[position - 1].group if position else None
            if step.group is not None and step.group == previous:
                stages[-1].append(position)
            else:
                stages.append([position])
        return stages

    def dump(self) -> dict[str, Any]:
        """The JSON form that is stored and returned."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def load_definition(data: WorkflowDefinition | Mapping[str, Any]) -> WorkflowDefinition:
    """Validate a definition from JSON; errors name the field."""
    if isinstance(data, WorkflowDefinition):
        return data
    try:
        return WorkflowDefinition.model_validate(dict(data))
    except ValidationError as exc:
        raise WorkflowValidationError([
            {"field": ".".join(str(p) for p in err["loc"]) or "(definition)", "reason": err["msg"]}
            for err in exc.errors()
        ]) from None


def check_definition(definition: WorkflowDefinition) -> None:
    """Unique names, contiguous groups, safe templates and conditions, `steps.<name>` of earlier stages."""
    problems: list[dict[str, str]] = []
    seen_groups: set[str] = set()
    available: set[str] = set()
    for stage in definition.stages():
        stage_names: set[str] = set()
        for position in stage:
            step = definition.steps[position]
            where = f"steps.{position}"
            if step.name in available or step.name in stage_names:
                problems.append({"field": f"{where}.name", "reason": f"duplicate step name {step.name!r}"})
            if step.group is not None and step.group in seen_groups and position == stage[0]:
                problems.append({"field": f"{where}.group",
                                 "reason": f"the steps of group {step.group!r} must be consecutive"})
            for field, template in step.templates(where):
                problems += _check_refs(field, template, available, template=True)
            if step.when:
                problems += _check_refs(f"{where}.when", step.when, available, template=False)
            stage_names.add(step.name or "")
        seen_groups.update(group for group in (definition.steps[p].group for p in stage) if group)
        available |= stage_names
    if problems:
        raise WorkflowValidationError(problems)


def _check_refs(field: str, source: str, available: set[str], *, template: bool) -> list[dict[str, str]]:
    try:
        refs = analyze_template(source) if template else analyze_expression(source)
    except UnsafeTemplateError as exc:
        return [{"field": field, "reason": f"refused: {exc}"}]
    except TemplateSyntaxError as exc:
        return [{"field": field, "reason": f"syntax error: {exc.message}"}]
    return [{"field": field, "reason": f"`steps.{name}` is not an earlier step"}
            for name in sorted(refs.steps - available)]


def check_variables(definition: WorkflowDefinition, variables: Mapping[str, Any]) -> None:
    """Every name a template or condition reads must be provided; raised before any model call."""
    provided = set(RESERVED_NAMES) | set(definition.variables) | set(variables)
    problems = [{"field": f"variables.{name}", "reason": "a reserved name cannot be a variable"}
                for name in sorted(set(variables) & RESERVED_NAMES)]
    for position, step in enumerate(definition.steps):
        for field, refs in _step_references(position, step):
            problems += [{"field": field, "reason": f"missing variable {name!r}"}
                         for name in sorted(refs.names - provided)]
    if problems:
        raise WorkflowValidationError(problems)


def _step_references(position: int, step: StepDefinition) -> Iterable[tuple[str, References]]:
    for field, template in step.templates(f"steps.{position}"):
        yield field, analyze_template(template)
    if step.when:
        yield f"steps.{position}.when", analyze_expression(step.when)

"""The parameters of one call, declared once: what shapes the answer (`GenerationParams`) and whom the call
is for (`CallContext`). The API's request models, `BaseModel.generate`, workflow steps, comparisons and
experiment variants all use these types, so a range is checked in one place and an unknown name is refused.

Numbers are strict: `true` is not 1, and `"5"` is not 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInputError, validation_fields

# `cache`: the semantic cache embedding a user message; `probe`: a health probe; `langchain`: a LangChain chat model.
Source = Literal["api", "workflow", "comparison", "experiment", "library", "probe", "cache", "langchain"]
# What a call may do with the response cache: what its policy allows (`on`), nothing, only read or only write.
CacheMode = Literal["on", "off", "read", "write"]

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Integer = Annotated[int, Field(strict=True)]
UserId = Annotated[str, Field(min_length=1, max_length=200)]
Tag = Annotated[str, Field(min_length=1, max_length=200)]
MAX_TAGS = 50
MAX_STOP_SEQUENCES = 16
MAX_TOKENS_LIMIT = 1_000_000
Temperature = Annotated[Number, Field(ge=0, le=2)]
MaxTokens = Annotated[Integer, Field(ge=1, le=MAX_TOKENS_LIMIT)]


class JsonSchemaFormat(BaseModel):
    """OpenAI's `json_schema` response format: a named JSON Schema the answer must match."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str = Field(default="response", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = Field(default=None, max_length=2000)


class ResponseFormat(BaseModel):
    """`text` (default), `json_object` (any JSON object) or `json_schema` (JSON matching a schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("`json_schema` is required with type json_schema, and only then")
        return self

    @property
    def wants_json(self) -> bool:
        return self.type != "text"

    @property
    def output_schema(self) -> dict[str, Any] | None:
        return self.json_schema.json_schema if self.json_schema else None


class FunctionSpec(BaseModel):
    """A function the model may call: its name, what it does, and its parameters as a JSON Schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = Field(default=None, max_length=10_000)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(BaseModel):
    """OpenAI's tool shape; functions are the only kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["function"] = "function"
    function: FunctionSpec


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)


class NamedToolChoice(BaseModel):
    """Force one named function."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["function"] = "function"
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class GenerationParams(BaseModel):
    """Everything that changes a model's answer. The common ones every provider honours; the others only
    where a provider declares them in `supported_params` (elsewhere the call is refused, never altered)."""

    model_config = ConfigDict(extra="forbid")

    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    top_p: Number | None = Field(default=None, ge=0, le=1)
    stop: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(
        default=None, max_length=MAX_STOP_SEQUENCES, description="A string or a list of strings")
    seed: Integer | None = Field(default=None, ge=-(2**63), lt=2**63)
    response_format: ResponseFormat | None = None
    tools: list[ToolSpec] | None = Field(default=None, min_length=1, max_length=128)
    tool_choice: ToolChoice | None = None
    # Provider extras: which provider supports which is declared by its model class.
    top_k: Integer | None = Field(default=None, ge=1, le=10_000)
    presence_penalty: Number | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: Number | None = Field(default=None, ge=-2, le=2)
    repeat_penalty: Number | None = Field(default=None, gt=0, le=10)
    thinking_budget: Integer | None = Field(default=None, ge=0, le=MAX_TOKENS_LIMIT)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None

    COMMON: ClassVar[frozenset[str]] = frozenset(
        {"temperature", "max_tokens", "top_p", "stop", "seed", "response_format"})

    @model_validator(mode="after")
    def _choice_among_the_tools(self) -> GenerationParams:
        if self.tool_choice is not None and not self.tools:
            raise ValueError("`tool_choice` needs `tools`")
        if isinstance(self.tool_choice, NamedToolChoice):
            name = self.tool_choice.function.name
            if name not in {tool.function.name for tool in self.tools or ()}:
                raise ValueError(f"`tool_choice` names {name!r}, which is not among the tools")
        return self

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_sequence(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @classmethod
    def parse(cls, values: dict[str, Any], *, prefix: str = "") -> Self:
        """Validate library keyword arguments; an unknown or invalid one raises `InvalidInputError` naming it."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise InvalidInputError(validation_fields(exc, prefix)) from None

    def given(self) -> dict[str, Any]:
        """The parameters that were set, as JSON-ready values (what the request log keeps)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    def only_generation(self) -> GenerationParams:
        """Just the generation fields, without those a subclass adds (a step's name, a request's prompt).

        Already validated, so constructed without validating again (this runs on every API call).
        """
        return GenerationParams.model_construct(**{name: getattr(self, name) for name in GenerationParams.model_fields})


class PromptParams(GenerationParams):
    """Generation parameters plus the system prompt: what a comparison or an experiment variant fixes."""

    system: str | None = Field(default=None, max_length=100_000)


@dataclass(frozen=True, slots=True)
class Route:
    """One attempt of a group's call: the group the client named, the request id the client got, the attempt's
    index (0 first) and whether it is the embedded model standing in for the group's remote deployments.

    A plain dataclass: a group builds one per attempt, from values it already holds."""

    group: str
    client_request_id: str
    attempt: int
    degraded: bool = False


class CallContext(BaseModel):
    """Whom and what a call is for: it is recorded with the call and never changes the answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Source = "library"
    user_id: UserId | None = None
    tags: tuple[Tag, ...] | None = Field(default=None, max_length=MAX_TAGS)
    api_key_id: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, min_length=1, max_length=36)
    route: Route | None = None  # set by a group on each attempt it makes
    cache: CacheMode | None = None  # None: `on`
    cache_ttl: int | None = Field(default=None, ge=1, le=365 * 86_400)  # seconds to keep this call's answer
    prompt_name: str | None = Field(default=None, max_length=100)  # the registry prompt the call rendered
    prompt_version: int | None = Field(default=None, ge=1)

    @classmethod
    def parse(cls, **values: Any) -> CallContext:
        """Validate library keyword arguments; raises `InvalidInputError` naming the field."""
        given = {name: value for name, value in values.items() if value is not None}
        if given.keys() <= {"source"} and given.get("source", "library") in _PLAIN:  # most library calls
            return _PLAIN[given.get("source", "library")]
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise InvalidInputError(validation_fields(exc)) from None

    def with_tags(self, *tags: str) -> CallContext:
        return self.model_copy(update={"tags": (*(self.tags or ()), *tags)})


# The context of a call that names nothing but its source: frozen, so one instance per source serves them all.
_PLAIN = {source: CallContext(source=source) for source in get_args(Source)}

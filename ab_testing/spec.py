"""What an experiment is defined by, validated once for the library and the API alike."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer, field_validator, model_validator

from models.params import PromptParams
from models.prompts.spec import PromptTarget

METRIC_NAME = r"^[a-z][a-z0-9_]{0,99}$"
VARIANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
# Keys of a variant summary, which a custom metric name must not shadow.
RESERVED_METRICS = frozenset({"n", "successes", "name", "model", "weight", "params", "is_control", "conversion",
                              "prompt_ref"})


class VariantSpec(BaseModel):
    """One arm: a model and the generation params (system prompt, temperature, ...) it is called with, and
    optionally a registry prompt version (or label) that a call routed here renders with the call's variables."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=VARIANT_NAME)
    model: str = Field(min_length=1, max_length=200)
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    params: PromptParams = Field(default_factory=PromptParams,
                                 description="The system prompt and generation parameters of this arm")
    prompt_ref: PromptTarget | None = Field(default=None, description="{name, version | label}: the prompt to render")

    @field_serializer("params")
    def _params_as_given(self, params: PromptParams) -> dict[str, Any]:
        """Stored and shown as set: `{"system": ..., "max_tokens": 16}`."""
        return params.given()

    @field_serializer("prompt_ref")
    def _prompt_as_given(self, prompt_ref: PromptTarget | None) -> dict[str, Any] | None:
        return prompt_ref.model_dump(exclude_none=True) if prompt_ref is not None else None


MAX_COUNT = 10**12  # sample-size settings stay far inside a 64-bit database integer
MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ExperimentSpec(BaseModel):
    """The general form of an experiment; `start` creates it running instead of as a draft."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    variants: list[VariantSpec] = Field(min_length=2, max_length=20)
    control: str | None = None
    coverage: float = Field(default=1.0, ge=0, le=1)
    seed: str | None = Field(default=None, min_length=1, max_length=200)
    primary_metric: str = Field(default="conversion", pattern=METRIC_NAME)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, ge=0.5, lt=1)
    min_sample_size: int = Field(default=100, ge=2, le=MAX_COUNT)
    min_conversions: int = Field(default=25, ge=0, le=MAX_COUNT)
    mde: float | None = Field(default=0.05, gt=0, allow_inf_nan=False)
    multiple_testing: Literal["holm", "bh"] = Field(
        default="holm", description="Adjustment across treatments: holm (family-wise error) or bh (false discovery)")
    planned_sample_size: int | None = Field(
        default=None, ge=2, le=MAX_COUNT,
        description="Units (all variants) the experiment plans to reach: its sequential tests are calibrated to "
                    "spend all of alpha by then, instead of the open-ended mSPRT's conservative bound")
    cuped_metrics: list[MetricName] = Field(
        default_factory=list, max_length=50,
        description="Named metrics whose every outcome carries the unit's pre-period value (`pre_period`), for "
                    "CUPED variance reduction")
    start: bool = False

    @model_validator(mode="after")
    def _check_variants(self) -> ExperimentSpec:
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variants: variant names must be unique")
        if sum(variant.weight for variant in self.variants) <= 0:
            raise ValueError("variants: at least one weight must be positive")
        if self.control is None:
            self.control = names[0]
        elif self.control not in names:
            raise ValueError(f"control: {self.control!r} is not one of the variants ({', '.join(names)})")
        if self.primary_metric in RESERVED_METRICS - {"conversion"}:
            raise ValueError(f"primary_metric: {self.primary_metric!r} is not a metric")
        reserved = sorted((RESERVED_METRICS | {"rating"}) & set(self.cuped_metrics))
        if reserved:
            raise ValueError(f"cuped_metrics: {', '.join(reserved)} are not named metrics")
        return self


def legacy_spec(name: str, variant_a: str, variant_b: str) -> ExperimentSpec:
    """The original two-model experiment: running at once, A (control) and B split 50/50."""
    return ExperimentSpec(
        name=name, variants=[VariantSpec(name="A", model=variant_a), VariantSpec(name="B", model=variant_b)],
        control="A", start=True,
    )




class OutcomeSpec(BaseModel):
    """One observed outcome of a variant; `outcome_id` makes recording it idempotent."""

    model_config = ConfigDict(extra="forbid")

    variant: str = Field(min_length=1, max_length=100)
    success: bool
    rating: FiniteFloat | None = None
    metrics: dict[MetricName, FiniteFloat] = Field(default_factory=dict, max_length=50)
    pre_period: dict[MetricName, FiniteFloat] = Field(
        default_factory=dict, max_length=50,
        description="The unit's value of each metric before the experiment (0 when it had none), for CUPED")
    outcome_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("metrics")
    @classmethod
    def _check_metric_names(cls, metrics: dict[str, float]) -> dict[str, float]:
        reserved = sorted((RESERVED_METRICS | {"rating"}) & metrics.keys())
        if reserved:
            raise ValueError(f"metric names {', '.join(reserved)} are reserved")
        return metrics

    @model_validator(mode="after")
    def _pre_period_of_reported_metrics(self) -> OutcomeSpec:
        extra = sorted(self.pre_period.keys() - self.metrics.keys())
        if extra:
            raise ValueError(f"pre_period: {', '.join(extra)} not among this outcome's metrics")
        return self

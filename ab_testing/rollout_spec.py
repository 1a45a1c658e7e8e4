"""What a rollout is defined by, validated once for the library and the API alike."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ab_testing.rollout_targets import Target

MAX_STEPS = 20
PrimaryMetric = Literal["error_rate", "latency", "cost"]


class Guardrails(BaseModel):
    """How much worse than the control the candidate may be before the rollout is rolled back."""

    model_config = ConfigDict(extra="forbid")

    error_rate_points: float = Field(default=1.0, ge=0, le=100, allow_inf_nan=False,
                                     description="Percentage points the error rate may rise")
    p95_latency_ratio: float = Field(default=1.2, ge=1, allow_inf_nan=False,
                                     description="Candidate p95 latency / control p95 latency, at most")
    cost_per_call_ratio: float = Field(default=1.2, ge=1, allow_inf_nan=False,
                                       description="Candidate mean cost per call / control's, at most")
    alpha: float = Field(default=0.05, gt=0, lt=0.5, allow_inf_nan=False,
                         description="Always-valid p-value below which a breach is proven")


class RolloutSpec(BaseModel):
    """A schedule moving traffic that names `control` to `candidate`, step by step."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    control: str = Field(min_length=1, max_length=200, description=(
        "What calls name today: a model, group or alias (`summarizer`, serving its production version), or "
        "`prompt:<name>` (calls whose `prompt_ref` names that prompt by its `production` label)"))
    candidate: str = Field(min_length=1, max_length=200, description=(
        "What takes over: another model or group (`summarizer-v2`); `<model>@<major.minor.patch>`, a recorded "
        "version of the control model (`summarizer@1.1.0`), promoted to production at the end; or "
        "`prompt:<name>@<version>`, a version of the control prompt (`prompt:greeting@4`), which then gets the "
        "`production` label"))
    steps: list[float] = Field(default=[1, 5, 25, 50, 100], min_length=1, max_length=MAX_STEPS,
                               description="Percent of the control's traffic on the candidate, increasing to 100")
    min_calls_per_step: int = Field(default=100, ge=1, le=10_000_000, strict=True)
    min_seconds_per_step: float = Field(default=3600, ge=0, le=365 * 86_400, allow_inf_nan=False)
    guardrails: Guardrails = Field(default_factory=Guardrails)
    primary_metric: PrimaryMetric = Field(default="error_rate", description=(
        "The metric the candidate must be proven not worse on (beyond `non_inferiority_margin`) before the last "
        "step with a control arm moves on and before promotion: error_rate, latency (mean) or cost (per call)"))
    non_inferiority_margin: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False, description=(
        "How much worse the primary metric may be: percentage points for error_rate, a fraction of the control's "
        "mean for latency and cost (0.05 = 5%); by default the matching guardrail's limit. 0: proven better"))

    @field_validator("steps")
    @classmethod
    def _schedule(cls, steps: list[float]) -> list[float]:
        if any(not 0 < step <= 100 for step in steps):
            raise ValueError("each step is a percentage above 0 and at most 100")
        if any(later <= earlier for earlier, later in zip(steps, steps[1:], strict=False)):
            raise ValueError("steps must increase")
        if steps[-1] != 100 or steps[0] == 100:
            raise ValueError("steps must end at 100 and start below it, so the control has calls to compare")
        return steps

    @field_validator("control")
    @classmethod
    def _control(cls, control: str) -> str:
        Target.parse(control).check_control()
        return control

    @field_validator("candidate")
    @classmethod
    def _candidate(cls, candidate: str, info: ValidationInfo) -> str:
        target = Target.parse(candidate)
        control = info.data.get("control")
        if control is None:  # the control was refused: its own error says why
            return candidate
        if candidate == control:
            raise ValueError("the candidate must differ from the control")
        Target.parse(control).check_candidate(target)
        return candidate

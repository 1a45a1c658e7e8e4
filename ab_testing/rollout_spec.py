"""What a rollout is defined by, validated once for the library and the API alike."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_STEPS = 20


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
    control: str = Field(min_length=1, max_length=200, description="The model or group calls name")
    candidate: str = Field(min_length=1, max_length=200, description="The model or group taking over")
    steps: list[float] = Field(default=[1, 5, 25, 50, 100], min_length=1, max_length=MAX_STEPS,
                               description="Percent of the control's traffic on the candidate, increasing to 100")
    min_calls_per_step: int = Field(default=100, ge=1, le=10_000_000, strict=True)
    min_seconds_per_step: float = Field(default=3600, ge=0, le=365 * 86_400, allow_inf_nan=False)
    guardrails: Guardrails = Field(default_factory=Guardrails)

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

    @field_validator("candidate")
    @classmethod
    def _differs(cls, candidate: str, info: ValidationInfo) -> str:
        if candidate == info.data.get("control"):
            raise ValueError("the candidate must differ from the control")
        return candidate

"""Turns scorer specs into a scoring plan (per-answer scorers plus an optional pairwise judge) and applies it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from comparison.errors import InvalidScorerError
from comparison.judge import DEFAULT_RUBRIC, JudgeScorer, PairwiseJudge, judge_threshold
from comparison.scorers import Score, Scorer, build_reference_scorer
from models.base_model import BaseModel


class ModelSource(Protocol):
    """What scoring needs from the registry: a model by name or alias."""

    def require_model(self, name: str | None = None) -> BaseModel: ...


@dataclass
class ScoringPlan:
    """The scorers of one comparison or dataset item."""

    scorers: list[Scorer] = field(default_factory=list)
    pairwise: PairwiseJudge | None = None

    @property
    def active(self) -> bool:
        return bool(self.scorers) or self.pairwise is not None

    def score_answer(self, response: str, prompt: str) -> list[Score]:
        return [scorer.score(response, prompt) for scorer in self.scorers]


def build_scoring(
    specs: Sequence[Mapping[str, Any]] | None, registry: ModelSource, reference: str | None = None,
    api_key_id: str | None = None,
) -> ScoringPlan:
    """Validate every spec up front, so a bad scorer fails the request before any model is called.

    Judges call with `api_key_id`, the key of the comparison they score.
    """
    plan = ScoringPlan()
    for spec in specs or ():
        if not isinstance(spec, Mapping):
            raise InvalidScorerError("Each scorer must be an object with a 'type'")
        kind = spec.get("type")
        if kind in ("judge", "pairwise"):
            judge = registry.require_model(_judge_model(spec))
            rubric = spec.get("rubric") or DEFAULT_RUBRIC
            if not isinstance(rubric, str):
                raise InvalidScorerError("'rubric' must be text", details={"scorer": kind})
            if kind == "judge":
                plan.scorers.append(JudgeScorer(judge, rubric, judge_threshold(spec), api_key_id=api_key_id))
            elif plan.pairwise is not None:
                raise InvalidScorerError("Only one pairwise judge per comparison", details={"scorer": kind})
            else:
                plan.pairwise = PairwiseJudge(judge, rubric, api_key_id=api_key_id)
        else:
            plan.scorers.append(build_reference_scorer(spec, reference))
    return plan


def _judge_model(spec: Mapping[str, Any]) -> str:
    model = spec.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidScorerError(f"Scorer {spec.get('type')!r} needs the judge 'model'",
                                 details={"scorer": spec.get("type")})
    return model


def mean_score(scores: Sequence[Score]) -> float | None:
    """The mean of the scores that decided; None when none did."""
    decided = [s.score for s in scores if s.score is not None]
    return sum(decided) / len(decided) if decided else None

"""The winner rule: a weighted score over quality, latency and cost, each normalized across the models.

How the winner is chosen
------------------------
1. Only models that answered are candidates; a model that failed is reported with its error and never wins.
2. Each part is normalized across the candidates to [0, 1], relative to the best candidate:
   - quality (mean scorer score, higher is better): ``quality / best_quality`` (0 when every quality is 0);
   - latency (median seconds, lower is better): ``best_latency / latency``;
   - cost (USD per answer, lower is better): ``best_cost / cost`` (a free answer scores 1; a paid one
     scores 0 against a free one).
   A part is left out when some candidate has no value for it (no scorer, or an unpriced model).
3. The total is the weighted mean of the parts present: ``sum(w_p * n_p) / sum(w_p)``.
4. Weights may be given per request, e.g. ``{"quality": 1, "cost": 1}``; parts not named weigh 0.
   Defaults: with a scorer, quality 0.7, latency 0.15, cost 0.15 (quality dominates);
   without one, latency 0.5 and cost 0.5.
5. The highest total wins. When the best totals are within ``TIE_TOLERANCE`` (0.01) of each other the
   result is a tie: ``winner`` is None and ``winner_details.tied`` names the tied models.
6. The explanation names each part of the winner against the runner-up and the part that decided.
7. A model listed more than once (e.g. compared with itself, as the original's demo does) gives one entry per
   listing, labelled ``<model>#1``, ``<model>#2``, ...; the entries are scored and ranked by the rules above
   like any others. ``winner`` names the model of the best entry (``winner_details.winner`` the entry). When
   the best entries tie and all are entries of one model, that model is the winner: whichever of its entries
   did better, it did. Two runs of one model differ only by sampling and timing noise, so such a comparison
   shows how much the model varies, not that one run is better. For the history and ratings a model never
   plays itself: it enters each comparison once, with its best entry's outcome, and only pairs of entries of
   different models count towards Elo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from comparison.errors import InvalidWeightsError

PARTS = ("quality", "latency", "cost")
DEFAULT_WEIGHTS_WITH_QUALITY = {"quality": 0.7, "latency": 0.15, "cost": 0.15}
DEFAULT_WEIGHTS_WITHOUT_QUALITY = {"quality": 0.0, "latency": 0.5, "cost": 0.5}
TIE_TOLERANCE = 0.01
HIGHER_IS_BETTER = {"quality": True, "latency": False, "cost": False}


@dataclass(frozen=True)
class Candidate:
    """One model's measurements; `ok` is False when it failed."""

    model: str
    ok: bool
    quality: float | None = None
    latency: float | None = None
    cost: float | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome: winner (None on a tie or when nobody answered), totals, parts and the explanation."""

    winner: str | None
    tie: bool
    tied: list[str]
    totals: dict[str, float]
    normalized: dict[str, dict[str, float]]
    weights: dict[str, float]
    outcomes: dict[str, str]
    pairs: list[dict[str, Any]]
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": self.winner, "tie": self.tie, "tied": self.tied, "weights": self.weights,
            "totals": self.totals, "normalized": self.normalized, "outcomes": self.outcomes,
            "pairs": self.pairs, "explanation": self.explanation, "tie_tolerance": TIE_TOLERANCE,
        }


def resolve_weights(weights: Mapping[str, float] | None, has_quality: bool) -> dict[str, float]:
    """The request's weights (unnamed parts weigh 0), or the defaults for whether a scorer ran."""
    if weights is None:
        return dict(DEFAULT_WEIGHTS_WITH_QUALITY if has_quality else DEFAULT_WEIGHTS_WITHOUT_QUALITY)
    unknown = sorted(set(weights) - set(PARTS))
    if unknown:
        raise InvalidWeightsError(f"Unknown weight(s) {', '.join(unknown)}; use {', '.join(PARTS)}")
    if any(not isinstance(v, int | float) or isinstance(v, bool) or v < 0 for v in weights.values()):
        raise InvalidWeightsError("Weights must be non-negative numbers")
    if sum(weights.values()) <= 0:
        raise InvalidWeightsError("At least one weight must be positive")
    return {part: float(weights.get(part, 0.0)) for part in PARTS}


def normalize(values: Mapping[str, float], higher_is_better: bool) -> dict[str, float]:
    """Each value relative to the best one, in [0, 1]."""
    if higher_is_better:
        best = max(values.values())
        return {m: (v / best if best > 0 else 0.0) for m, v in values.items()}
    best = min(values.values())
    return {m: (1.0 if v <= best else (best / v if v > 0 else 1.0)) for m, v in values.items()}


def decide(candidates: Sequence[Candidate], weights: Mapping[str, float] | None = None,
           tie_tolerance: float = TIE_TOLERANCE) -> Decision:
    """Apply the winner rule (see the module docstring) to the compared models."""
    ok = [c for c in candidates if c.ok]
    has_quality = bool(ok) and all(c.quality is not None for c in ok)
    used = resolve_weights(weights, has_quality)
    normalized = _normalized_parts(ok, used)
    denominator = sum(used[part] for part in normalized)
    totals = {
        c.model: (sum(used[p] * normalized[p][c.model] for p in normalized) / denominator if denominator else 0.0)
        for c in ok
    }
    ranked = sorted(totals, key=lambda m: totals[m], reverse=True)
    tied = [m for m in ranked if ranked and totals[ranked[0]] - totals[m] <= tie_tolerance]
    is_tie = len(tied) > 1
    winner = ranked[0] if ranked and not is_tie else None
    outcomes = {c.model: _outcome(c, winner, tied if is_tie else []) for c in candidates}
    return Decision(
        winner=winner, tie=is_tie, tied=tied if is_tie else [],
        totals={m: round(t, 6) for m, t in totals.items()},
        normalized={p: {m: round(v, 6) for m, v in vals.items()} for p, vals in normalized.items()},
        weights={p: used[p] for p in PARTS}, outcomes=outcomes,
        pairs=_pairs(candidates, totals, tie_tolerance),
        explanation=_explain(ranked, totals, normalized, used, candidates, is_tie, tied),
    )


def _normalized_parts(ok: Sequence[Candidate], weights: Mapping[str, float]) -> dict[str, dict[str, float]]:
    parts: dict[str, dict[str, float]] = {}
    for part in PARTS:
        values = {c.model: getattr(c, part) for c in ok}
        if weights[part] > 0 and values and all(v is not None for v in values.values()):
            parts[part] = normalize(values, HIGHER_IS_BETTER[part])
    return parts


def _outcome(candidate: Candidate, winner: str | None, tied: list[str]) -> str:
    if not candidate.ok:
        return "error"
    if candidate.model == winner:
        return "win"
    return "tie" if candidate.model in tied else "loss"


def _pairs(candidates: Sequence[Candidate], totals: Mapping[str, float], tolerance: float) -> list[dict[str, Any]]:
    """Every pairwise result for ratings: higher total wins, near-equal totals draw, a failure loses."""
    pairs = []
    for i, a in enumerate(candidates):
        for b in candidates[i + 1:]:
            if not a.ok and not b.ok:
                continue
            if a.ok and b.ok:
                diff = totals[a.model] - totals[b.model]
                score = 0.5 if abs(diff) <= tolerance else (1.0 if diff > 0 else 0.0)
            else:
                score = 1.0 if a.ok else 0.0
            pairs.append({"model_a": a.model, "model_b": b.model, "score_a": score})
    return pairs


def _explain(ranked: list[str], totals: Mapping[str, float], normalized: Mapping[str, Mapping[str, float]],
             weights: Mapping[str, float], candidates: Sequence[Candidate], is_tie: bool, tied: list[str]) -> str:
    failed = [c.model for c in candidates if not c.ok]
    note = f" Failed, so not eligible: {', '.join(failed)}." if failed else ""
    if not ranked:
        return "No model answered successfully, so there is no winner." + note
    parts = ", ".join(f"{p} (weight {weights[p]:g})" for p in normalized) or "no weighted part"
    if len(ranked) == 1:
        return f"{ranked[0]} wins as the only model that answered; it scored {totals[ranked[0]]:.3f}." + note
    if is_tie:
        scores = ", ".join(f"{m} {totals[m]:.3f}" for m in tied)
        return f"Tie: weighted scores over {parts} are within {TIE_TOLERANCE} of each other ({scores})." + note
    first, second = ranked[0], ranked[1]
    denominator = sum(weights[p] for p in normalized)
    margins = {p: weights[p] * (normalized[p][first] - normalized[p][second]) / denominator for p in normalized}
    deciding = max(margins, key=lambda p: margins[p])
    detail = "; ".join(
        f"{p} {normalized[p][first]:.2f} vs {normalized[p][second]:.2f} (weight {weights[p]:g})" for p in normalized)
    return (f"{first} wins with weighted score {totals[first]:.3f} against {second} {totals[second]:.3f} "
            f"(normalized {detail}). Deciding part: {deciding}, worth {margins[deciding]:+.3f}.{note}")


OUTCOME_RANK = {"error": 0, "loss": 1, "tie": 2, "win": 3}


def entry_labels(models: Sequence[str]) -> list[str]:
    """Each entry's label: the model name, or `<model>#<n>` for a model listed more than once (rule 7)."""
    counts = {model: models.count(model) for model in models}
    seen: dict[str, int] = {}
    labels = []
    for model in models:
        seen[model] = seen.get(model, 0) + 1
        labels.append(model if counts[model] == 1 else f"{model}#{seen[model]}")
    return labels


def winning_model(decision: Decision, model_of: Mapping[str, str]) -> str | None:
    """The model of the winning entry; on a tie, the model whose entries are all the tied ones (rule 7)."""
    if decision.winner is not None:
        return model_of[decision.winner]
    tied_models = {model_of[label] for label in decision.tied}
    return tied_models.pop() if len(tied_models) == 1 else None


def model_outcomes(outcomes: Mapping[str, str], model_of: Mapping[str, str], winner: str | None) -> dict[str, str]:
    """Each model's outcome from its entries' outcomes: `win` for the winning model, else its best entry's."""
    by_model: dict[str, str] = {}
    for label, outcome in outcomes.items():
        model = model_of[label]
        if OUTCOME_RANK[outcome] >= OUTCOME_RANK[by_model.get(model, "error")]:
            by_model[model] = outcome
    if winner is not None:
        by_model[winner] = "win"
    return by_model


def model_pairs(pairs: Sequence[Mapping[str, Any]], model_of: Mapping[str, str]) -> list[dict[str, Any]]:
    """The pairwise results between entries of different models, named by model: a model never plays itself."""
    return [{**pair, "model_a": model_of[pair["model_a"]], "model_b": model_of[pair["model_b"]]}
            for pair in pairs if model_of[pair["model_a"]] != model_of[pair["model_b"]]]

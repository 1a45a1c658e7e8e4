"""Pluggable quality scorers: each turns one answer into a score in [0, 1] and a pass/fail verdict.

A scorer spec is a dict such as `{"type": "contains", "reference": "Paris"}`; `build_scorers` turns
specs into scorers. Reference-based scorers fall back to the comparison's or dataset item's reference.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jsonschema

from comparison.errors import InvalidScorerError
from core.patterns import Pattern, PatternError, PatternTimeoutError


@dataclass(frozen=True)
class Score:
    """One scorer's verdict on one answer; `score` is None when the scorer could not decide."""

    scorer: str
    score: float | None
    passed: bool
    detail: str | None = None
    raw: float | None = None
    request_ids: list[str] = field(default_factory=list)
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"scorer": self.scorer, "score": self.score, "passed": self.passed}
        if self.detail is not None:
            data["detail"] = self.detail
        if self.raw is not None:
            data["raw"] = self.raw
        if self.request_ids:
            data["request_ids"] = list(self.request_ids)
        if self.cost is not None:
            data["cost"] = self.cost
        return data


class Scorer(Protocol):
    """Grades an answer to `prompt`."""

    @property
    def name(self) -> str: ...

    def score(self, response: str, prompt: str) -> Score: ...


def normalize_text(text: str) -> str:
    """Case-folded, whitespace-collapsed, without surrounding punctuation: what 'the same answer' means."""
    return " ".join(text.casefold().split()).strip(string.punctuation + " ")


def answer_tokens(text: str) -> list[str]:
    """SQuAD-style tokens: lower case, punctuation and articles removed."""
    cleaned = "".join(" " if ch in string.punctuation else ch for ch in text.casefold())
    return [tok for tok in cleaned.split() if tok not in ("a", "an", "the")]


@dataclass(frozen=True)
class ExactScorer:
    reference: str
    name: str = "exact"

    def score(self, response: str, prompt: str) -> Score:
        ok = normalize_text(response) == normalize_text(self.reference)
        return Score(self.name, 1.0 if ok else 0.0, ok)


@dataclass(frozen=True)
class ContainsScorer:
    reference: str
    name: str = "contains"

    def score(self, response: str, prompt: str) -> Score:
        ok = normalize_text(self.reference) in normalize_text(response)
        return Score(self.name, 1.0 if ok else 0.0, ok)


@dataclass(frozen=True)
class RegexScorer:
    """Passes when the pattern occurs; a search past the time limit cannot decide."""

    pattern: Pattern
    name: str = "regex"

    def score(self, response: str, prompt: str) -> Score:
        try:
            ok = self.pattern.search(response) is not None
        except PatternTimeoutError as exc:
            return Score(self.name, None, False, str(exc))
        return Score(self.name, 1.0 if ok else 0.0, ok)


@dataclass(frozen=True)
class TokenF1Scorer:
    reference: str
    threshold: float = 0.5
    name: str = "token_f1"

    def score(self, response: str, prompt: str) -> Score:
        f1 = token_f1(response, self.reference)
        return Score(self.name, f1, f1 >= self.threshold)


def token_f1(response: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (the SQuAD answer metric)."""
    predicted, expected = answer_tokens(response), answer_tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class JsonScorer:
    """Valid JSON (fences allowed), optionally matching a schema and expected field values."""

    schema: dict[str, Any] | None = None
    expected: dict[str, Any] | None = None
    name: str = "json"

    def score(self, response: str, prompt: str) -> Score:
        try:
            data = extract_json(response)
        except ValueError as exc:
            return Score(self.name, 0.0, False, f"not valid JSON: {exc}")
        if self.schema is not None:
            error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(self.schema).iter_errors(data))
            if error is not None:
                return Score(self.name, 0.0, False, f"schema violation: {error.message}")
        if not self.expected:
            return Score(self.name, 1.0, True)
        if not isinstance(data, dict):
            return Score(self.name, 0.0, False, "expected a JSON object")
        matched = [key for key, value in self.expected.items() if _same_value(data.get(key), value)]
        fraction = len(matched) / len(self.expected)
        missed = sorted(set(self.expected) - set(matched))
        detail = f"mismatched fields: {', '.join(missed)}" if missed else None
        return Score(self.name, fraction, fraction == 1.0, detail)


def _same_value(actual: Any, expected: Any) -> bool:
    if isinstance(expected, str) and isinstance(actual, str):
        return normalize_text(actual) == normalize_text(expected)
    numbers = (expected, actual)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        return float(actual) == float(expected)
    return actual == expected


def extract_json(text: str) -> Any:
    """Parse the answer as JSON, tolerating a Markdown code fence or prose around one object/array."""
    stripped = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", stripped, re.DOTALL)
    if fence:
        stripped = fence.group(1).strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON object or array found")
    try:
        data, _ = json.JSONDecoder().raw_decode(stripped[min(starts):])
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
    return data


@dataclass(frozen=True)
class LengthScorer:
    """Answer length within bounds, counted in words or characters."""

    min: int | None = None
    max: int | None = None
    unit: str = "words"
    name: str = "length"

    def score(self, response: str, prompt: str) -> Score:
        size = len(response.split()) if self.unit == "words" else len(response.strip())
        ok = (self.min is None or size >= self.min) and (self.max is None or size <= self.max)
        return Score(self.name, 1.0 if ok else 0.0, ok, f"{size} {self.unit}")


ScorerFactory = Callable[[Mapping[str, Any], "str | None"], Scorer]


def _reference(spec: Mapping[str, Any], default: str | None) -> str:
    reference = spec.get("reference", default)
    if not isinstance(reference, str) or not reference:
        raise InvalidScorerError(f"Scorer {spec.get('type')!r} needs a non-empty 'reference'",
                                 details={"scorer": spec.get("type")})
    return reference


def _regex(spec: Mapping[str, Any], default: str | None) -> Scorer:
    pattern = spec.get("pattern", default)
    if not isinstance(pattern, str) or not pattern:
        raise InvalidScorerError("Scorer 'regex' needs a 'pattern'", details={"scorer": "regex"})
    try:
        return RegexScorer(Pattern(pattern, ignore_case=bool(spec.get("ignore_case", True))))
    except PatternError as exc:
        raise InvalidScorerError(f"Invalid regex {pattern!r}: {exc}",
                                 details={"scorer": "regex", "field": "pattern"}) from None


def _json(spec: Mapping[str, Any], default: str | None) -> Scorer:
    schema, expected = spec.get("schema"), spec.get("expected")
    if schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            raise InvalidScorerError(f"Invalid JSON schema: {exc.message}", details={"scorer": "json"}) from None
    if expected is not None and not isinstance(expected, dict):
        raise InvalidScorerError("'expected' must be an object of field values", details={"scorer": "json"})
    return JsonScorer(schema=schema, expected=expected)


def _length(spec: Mapping[str, Any], default: str | None) -> Scorer:
    low, high, unit = spec.get("min"), spec.get("max"), spec.get("unit", "words")
    valid_bound = all(b is None or (isinstance(b, int) and not isinstance(b, bool) and b >= 0) for b in (low, high))
    if not valid_bound or (low is None and high is None) or unit not in ("words", "chars"):
        raise InvalidScorerError("Scorer 'length' needs integer 'min' and/or 'max' and unit words or chars",
                                 details={"scorer": "length"})
    if low is not None and high is not None and low > high:
        raise InvalidScorerError("Scorer 'length': 'min' is larger than 'max'", details={"scorer": "length"})
    return LengthScorer(min=low, max=high, unit=unit)


def _threshold(spec: Mapping[str, Any], default: float) -> float:
    value = spec.get("threshold", default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise InvalidScorerError("'threshold' must be a number between 0 and 1", details={"scorer": spec.get("type")})
    return float(value)


REFERENCE_SCORERS: dict[str, ScorerFactory] = {
    "exact": lambda spec, ref: ExactScorer(_reference(spec, ref)),
    "contains": lambda spec, ref: ContainsScorer(_reference(spec, ref)),
    "regex": _regex,
    "token_f1": lambda spec, ref: TokenF1Scorer(_reference(spec, ref), _threshold(spec, 0.5)),
    "json": _json,
    "length": _length,
}


def build_reference_scorer(spec: Mapping[str, Any], reference: str | None = None) -> Scorer:
    """A scorer that needs no model, from its spec."""
    factory = REFERENCE_SCORERS.get(str(spec.get("type")))
    if factory is None:
        raise InvalidScorerError(f"Unknown scorer type {spec.get('type')!r}", details={"scorer": spec.get("type")})
    return factory(spec, reference)

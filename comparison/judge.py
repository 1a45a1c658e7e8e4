"""LLM-as-judge: a registry model grades answers 1-10 against a rubric, or picks the better of two.

Pairwise judging asks twice with the answers swapped and counts a win only when both verdicts agree,
which cancels the judge's position bias; a disagreement is a tie.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from comparison.errors import InvalidScorerError
from comparison.scorers import Score
from models.base_model import BaseModel
from models.call_path import new_request_id

DEFAULT_RUBRIC = "Correct, complete, relevant to the question, and concise."
JUDGE_MAX_TOKENS = 64

GRADE_TEMPLATE = """You are grading an answer to a question.
Rubric: {rubric}

Question:
{prompt}

Answer:
{answer}

Grade the answer from 1 (useless) to 10 (perfect) against the rubric.
Reply with one line: Score: <number>"""

PAIRWISE_TEMPLATE = """You are comparing two answers to the same question.
Rubric: {rubric}

Question:
{prompt}

Answer A:
{first}

Answer B:
{second}

Which answer is better against the rubric? Reply with one line: Winner: A, Winner: B, or Winner: tie"""

_SCORE = re.compile(r"score\s*[:=]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"\b(\d+(?:\.\d+)?)\b")
_WINNER = re.compile(r"winner\s*[:=]?\s*(a|b|tie)\b", re.IGNORECASE)


def parse_grade(text: str) -> float | None:
    """The 1-10 grade in a judge's reply ('Score: 7' preferred, else the first number), or None."""
    match = _SCORE.search(text) or _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group(1))
    return value if 1 <= value <= 10 else None


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'tie' from a pairwise judge's reply, or None when it gave none."""
    match = _WINNER.search(text)
    if match:
        verdict = match.group(1).lower()
        return "tie" if verdict == "tie" else verdict.upper()
    bare = text.strip().strip(".").upper()
    return bare if bare in ("A", "B") else None


@dataclass(frozen=True)
class _Reply:
    text: str | None
    request_id: str
    error: str | None = None
    cost: float | None = None


def _ask(judge: BaseModel, prompt: str, api_key_id: str | None) -> _Reply:
    """One judge call through the managed path, made with the comparison's key; a failure is reported in the
    reply, not raised."""
    request_id = new_request_id()
    try:
        result = judge.generate(prompt, temperature=0.0, max_tokens=JUDGE_MAX_TOKENS, source="comparison",
                                request_id=request_id, tags=["judge"], api_key_id=api_key_id)
    except Exception as exc:  # a failing judge leaves the answer ungraded, never fails the run
        return _Reply(None, request_id, f"judge failed: {getattr(exc, 'code', type(exc).__name__)}: {exc}")
    return _Reply(result.response, result.request_id, cost=result.cost)


@dataclass
class JudgeScorer:
    """Grades one answer 1-10; the score is grade / 10 and it passes at `threshold` (a fraction)."""

    judge: BaseModel
    rubric: str = DEFAULT_RUBRIC
    threshold: float = 0.7
    name: str = "judge"
    api_key_id: str | None = None  # the key the comparison runs with: the judge's calls are made with it too

    def score(self, response: str, prompt: str) -> Score:
        reply = _ask(self.judge, GRADE_TEMPLATE.format(rubric=self.rubric, prompt=prompt, answer=response),
                     self.api_key_id)
        evidence: dict[str, Any] = {"request_ids": [reply.request_id], "cost": reply.cost}
        if reply.text is None:
            return Score(self.name, None, False, reply.error, **evidence)
        grade = parse_grade(reply.text)
        if grade is None:
            return Score(self.name, None, False, f"unparsable grade: {reply.text[:200]!r}", **evidence)
        return Score(self.name, grade / 10, grade / 10 >= self.threshold, raw=grade, **evidence)


@dataclass
class PairwiseJudge:
    """Judges two answers in both orders; `compare` returns 'first', 'second' or 'tie' plus its evidence."""

    judge: BaseModel
    rubric: str = DEFAULT_RUBRIC
    name: str = "pairwise"
    api_key_id: str | None = None  # as JudgeScorer's

    def compare(self, prompt: str, first: str, second: str) -> dict[str, Any]:
        replies = [
            _ask(self.judge, PAIRWISE_TEMPLATE.format(rubric=self.rubric, prompt=prompt, first=a, second=b),
                 self.api_key_id)
            for a, b in ((first, second), (second, first))
        ]
        verdicts = [parse_verdict(reply.text or "") for reply in replies]
        costs = [reply.cost for reply in replies if reply.cost is not None]
        return {
            "outcome": combine_verdicts(verdicts[0], verdicts[1]),
            "verdicts": verdicts,
            "request_ids": [reply.request_id for reply in replies],
            "errors": [reply.error for reply in replies if reply.error],
            "cost": sum(costs) if costs else None,
        }


def combine_verdicts(forward: str | None, backward: str | None) -> str:
    """'first' only if the forward order says A and the swapped order says B (and vice versa); else 'tie'."""
    if forward == "A" and backward == "B":
        return "first"
    if forward == "B" and backward == "A":
        return "second"
    return "tie"


def judge_threshold(spec: Mapping[str, Any]) -> float:
    """The pass mark of a judge spec, given on the 1-10 scale (default 7)."""
    value = spec.get("threshold", 7)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 1 <= value <= 10:
        raise InvalidScorerError("Judge 'threshold' must be a grade from 1 to 10", details={"scorer": "judge"})
    return float(value) / 10

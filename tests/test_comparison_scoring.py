"""Scorers, judge parsing, the winner rule and Elo ratings: pure functions, table-driven."""

from __future__ import annotations

import time

import pytest

from comparison.errors import InvalidScorerError, InvalidWeightsError
from comparison.judge import JudgeScorer, PairwiseJudge, combine_verdicts, parse_grade, parse_verdict
from comparison.ratings import elo_ratings, expected_score, leaderboard
from comparison.scorers import build_reference_scorer, extract_json, token_f1
from comparison.winner import Candidate, decide, normalize
from tests.fakes import FakeModel

PERSON_SCHEMA = {"type": "object", "required": ["name", "age"],
                 "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}


@pytest.mark.parametrize(("spec", "response", "score", "passed"), [
    ({"type": "exact", "reference": "Paris"}, "  paris. ", 1.0, True),
    ({"type": "exact", "reference": "Paris"}, "Paris, France", 0.0, False),
    ({"type": "contains", "reference": "Paris"}, "The capital is PARIS.", 1.0, True),
    ({"type": "contains", "reference": "Paris"}, "Lyon", 0.0, False),
    ({"type": "regex", "pattern": r"^\W*positive\b"}, "Positive.", 1.0, True),
    ({"type": "regex", "pattern": r"^\W*spam\b"}, "not_spam", 0.0, False),
    ({"type": "token_f1", "reference": "the quick brown fox"}, "quick brown fox", 1.0, True),
    ({"type": "token_f1", "reference": "quick brown fox jumps"}, "quick red fox", 4 / 7, True),
    ({"type": "token_f1", "reference": "quick brown fox", "threshold": 0.9}, "a slow dog", 0.0, False),
    ({"type": "json"}, 'Sure: ```json\n{"a": 1}\n```', 1.0, True),
    ({"type": "json"}, "{not json", 0.0, False),
    ({"type": "json", "schema": PERSON_SCHEMA}, '{"name": "Ann", "age": "old"}', 0.0, False),
    ({"type": "json", "schema": PERSON_SCHEMA, "expected": {"name": "Ann Lee", "age": 34}},
     'Here it is: {"name": "ann lee", "age": 34} done', 1.0, True),
    ({"type": "json", "expected": {"name": "Ann Lee", "age": 34}}, '{"name": "Ann Lee", "age": 35}', 0.5, False),
    ({"type": "length", "min": 2, "max": 4}, "three words here", 1.0, True),
    ({"type": "length", "max": 5, "unit": "chars"}, "too long text", 0.0, False),
])
def test_reference_scorers(spec, response, score, passed):
    result = build_reference_scorer(spec).score(response, "prompt")
    assert result.score == pytest.approx(score)
    assert result.passed is passed


def test_reference_falls_back_to_the_comparison_reference():
    assert build_reference_scorer({"type": "contains"}, "Tokyo").score("It is Tokyo", "q").passed


@pytest.mark.parametrize("spec", [
    {"type": "nope"}, {"type": "exact"}, {"type": "regex", "pattern": "("},
    {"type": "json", "schema": {"type": "no-such-type"}}, {"type": "length"},
    {"type": "length", "min": 5, "max": 2}, {"type": "token_f1", "reference": "x", "threshold": 3},
])
def test_invalid_scorer_specs_are_refused(spec):
    with pytest.raises(InvalidScorerError) as info:
        build_reference_scorer(spec)
    assert info.value.http_status == 400


def test_token_f1_and_json_extraction_edges():
    assert token_f1("", "") == 1.0
    assert token_f1("x", "") == 0.0
    assert extract_json("[1, 2] and more") == [1, 2]
    with pytest.raises(ValueError):
        extract_json("no braces at all")


@pytest.mark.parametrize(("reply", "grade"), [
    ("Score: 8", 8.0), ("I would give it 7/10.", 7.0), ("score=9.5", 9.5), ("Score: 11", None), ("great", None),
])
def test_parse_grade(reply, grade):
    assert parse_grade(reply) == grade


@pytest.mark.parametrize(("reply", "verdict"), [
    ("Winner: A", "A"), ("winner: b.", "B"), ("Winner: tie", "tie"), ("B", "B"), ("Both are fine", None),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


@pytest.mark.parametrize(("forward", "backward", "outcome"), [
    ("A", "B", "first"), ("B", "A", "second"), ("A", "A", "tie"), ("B", "B", "tie"), (None, "B", "tie"),
])
def test_pairwise_win_counts_only_when_both_orders_agree(forward, backward, outcome):
    assert combine_verdicts(forward, backward) == outcome


def test_judge_scorer_grades_through_the_model(svc):
    judge = FakeModel("judge").enqueue("Score: 9", "no idea", RuntimeError("down"))
    svc.registry.register_model(judge)
    scorer = JudgeScorer(judge, "Be correct.")
    good, unparsable, failed = (scorer.score("Paris", "Capital of France?") for _ in range(3))
    assert (good.score, good.passed, good.raw) == (0.9, True, 9.0)
    assert "Be correct." in judge.calls[0].prompt and "Paris" in judge.calls[0].prompt
    assert unparsable.score is None and "unparsable" in unparsable.detail
    assert failed.score is None and "judge failed" in failed.detail
    rows = svc.request_log.list(source="comparison")
    assert {r["request_id"] for r in rows} == {good.request_ids[0], unparsable.request_ids[0], failed.request_ids[0]}
    assert good.cost == pytest.approx(svc.request_log.get(good.request_ids[0])["cost"])


def test_pairwise_judge_asks_both_orders(svc):
    biased = FakeModel("biased").enqueue("Winner: A", "Winner: A")  # always prefers the first position
    fair = FakeModel("fair").enqueue("Winner: A", "Winner: B")
    for model in (biased, fair):
        svc.registry.register_model(model)
    assert PairwiseJudge(biased).compare("q", "ALPHA", "BRAVO")["outcome"] == "tie"
    verdict = PairwiseJudge(fair).compare("q", "ALPHA", "BRAVO")
    assert verdict["outcome"] == "first" and verdict["verdicts"] == ["A", "B"]
    first_prompt, second_prompt = (call.prompt for call in fair.calls)
    assert first_prompt.index("ALPHA") < first_prompt.index("BRAVO")
    assert second_prompt.index("BRAVO") < second_prompt.index("ALPHA")


def test_normalize_relative_to_the_best():
    assert normalize({"a": 2.0, "b": 1.0}, higher_is_better=False) == {"a": 0.5, "b": 1.0}
    assert normalize({"a": 0.0, "b": 0.001}, higher_is_better=False) == {"a": 1.0, "b": 0.0}
    assert normalize({"a": 0.5, "b": 1.0}, higher_is_better=True) == {"a": 0.5, "b": 1.0}


def test_quality_dominates_by_default_when_scored():
    decision = decide([
        Candidate("slow-right", True, quality=1.0, latency=2.0, cost=0.002),
        Candidate("fast-wrong", True, quality=0.0, latency=0.5, cost=0.001),
    ])
    assert decision.winner == "slow-right" and not decision.tie
    assert decision.weights == {"quality": 0.7, "latency": 0.15, "cost": 0.15}
    # 0.7*1 + 0.15*0.25 + 0.15*0.5 against 0.15*1 + 0.15*1
    assert decision.totals == {"slow-right": pytest.approx(0.8125), "fast-wrong": pytest.approx(0.3)}
    assert "Deciding part: quality" in decision.explanation


def test_without_scorer_latency_and_cost_decide_and_weights_are_per_request():
    candidates = [Candidate("fast", True, latency=0.5, cost=0.004), Candidate("cheap", True, latency=1.0, cost=0.001)]
    assert decide(candidates).winner == "cheap"  # 0.5*0.5 + 0.5*0.25 < 0.5*0.5 + 0.5*1
    only_latency = decide(candidates, {"latency": 1})
    assert only_latency.winner == "fast" and only_latency.weights["cost"] == 0.0
    assert "Deciding part: latency" in only_latency.explanation


def test_ties_are_declared_and_failures_never_win():
    decision = decide([
        Candidate("a", True, latency=1.0, cost=0.001), Candidate("b", True, latency=1.0, cost=0.001),
        Candidate("broken", False),
    ])
    assert decision.winner is None and decision.tie and decision.tied == ["a", "b"]
    assert decision.outcomes == {"a": "tie", "b": "tie", "broken": "error"}
    assert {(p["model_a"], p["model_b"], p["score_a"]) for p in decision.pairs} == {
        ("a", "b", 0.5), ("a", "broken", 1.0), ("b", "broken", 1.0)}
    assert decision.explanation.startswith("Tie")
    nobody = decide([Candidate("broken", False)])
    assert nobody.winner is None and not nobody.tie and "No model answered" in nobody.explanation


def test_unpriced_model_drops_the_cost_part():
    decision = decide([Candidate("a", True, latency=1.0, cost=None), Candidate("b", True, latency=2.0, cost=0.0)])
    assert set(decision.normalized) == {"latency"} and decision.winner == "a"


@pytest.mark.parametrize("weights", [{"speed": 1}, {"quality": -1}, {"quality": 0, "cost": 0}])
def test_bad_weights_are_refused(weights):
    with pytest.raises(InvalidWeightsError):
        decide([Candidate("a", True, latency=1.0, cost=0.0)], weights)


ELO_CASES = [
    # (outcomes, expected ratings) computed by hand with K=32, start 1500
    ([("a", "b", 1.0)], {"a": 1516.0, "b": 1484.0}),
    ([("a", "b", 0.5)], {"a": 1500.0, "b": 1500.0}),
    ([("a", "b", 1.0), ("a", "b", 1.0)], {"a": 1516.0 + 32 * (1 - expected_score(1516, 1484)),
                                          "b": 1484.0 - 32 * (1 - expected_score(1516, 1484))}),
]


@pytest.mark.parametrize(("outcomes", "expected"), ELO_CASES)
def test_elo(outcomes, expected):
    assert elo_ratings(outcomes) == pytest.approx(expected)


def test_expected_score_reference_value():
    assert expected_score(1600, 1400) == pytest.approx(0.759746, abs=1e-6)


def test_leaderboard_win_rate_is_wins_over_comparisons_entered():
    rows = leaderboard({"a": {"comparisons": 4, "wins": 3, "losses": 1}, "b": {"comparisons": 4, "wins": 1}},
                       {"a": 1530.0, "b": 1470.0})
    assert [(r["model"], r["win_rate"], r["rating"], r["comparisons"]) for r in rows] == [
        ("a", 0.75, 1530.0, 4), ("b", 0.25, 1470.0, 4)]


def test_a_catastrophic_pattern_stops_at_the_time_limit_and_cannot_decide():
    scorer = build_reference_scorer({"type": "regex", "pattern": r"(a|aa)+$"})
    started = time.monotonic()
    result = scorer.score("a" * 5000 + "!", "prompt")
    assert time.monotonic() - started < 1.0
    assert result.score is None and not result.passed and "longer than" in result.detail

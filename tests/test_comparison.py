"""ModelComparator: concurrency, identical params, repetitions, failures, scoring, persistence and ratings."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from comparison.comparison_store import ComparisonStore
from comparison.errors import ComparisonConfigError, ComparisonNotFoundError, InvalidScorerError
from comparison.model_comparator import ModelComparator
from comparison.ratings import expected_score
from comparison.tables import (
    benchmark_results,
    benchmark_runs,
    comparison_entries,
    comparison_pairs,
    comparisons,
)
from comparison.winner import Candidate, decide, entry_labels, model_outcomes, model_pairs, winning_model
from models.errors import ProviderUnavailableError, UnknownModelError
from models.model_registry import ModelRegistry
from tests.fakes import FakeModel


@pytest.fixture
def comparator(svc) -> ModelComparator:
    return svc.comparator


def _register(svc, *models: FakeModel) -> list[FakeModel]:
    for model in models:
        svc.registry.register_model(model)
    return list(models)


def test_models_run_concurrently_with_identical_params(svc, comparator):
    models = _register(svc, *(FakeModel(f"slow-{i}", delay=0.3) for i in range(3)))
    result = comparator.compare_models([m.name for m in models], "Say hi", system="Be brief", temperature=0.2,
                                       max_tokens=5)
    latencies = [r["latency"] for r in result["results"]]
    assert sum(latencies) >= 0.9
    spans = [m.spans[0] for m in models]
    assert max(start for start, _ in spans) < min(end for _, end in spans), "the three calls did not overlap"
    model_wall = max(end for _, end in spans) - min(start for start, _ in spans)
    assert model_wall < 0.7, f"ran sequentially: {model_wall:.2f} s"  # sequential would be >= 0.9 s
    assert result["comparison_metrics"]["wall_time"] < sum(latencies)
    requests = [m.calls[0] for m in models]
    assert {(r.prompt, r.system, r.temperature, r.max_tokens) for r in requests} == {("Say hi", "Be brief", 0.2, 5)}
    assert result["params"] == {"system": "Be brief", "temperature": 0.2, "max_tokens": 5}


def test_results_keep_the_original_shape_and_link_request_log_rows(svc, comparator):
    # b is both faster and cheaper, so it wins whatever the machine's load does to the measured latencies
    _register(svc, FakeModel("a", delay=0.05).enqueue("one two three four"), FakeModel("b").enqueue("three"))
    result = comparator.compare_models(["a", "b"], "hello")
    assert {"prompt", "results", "winner", "comparison_metrics"} <= set(result)
    for entry in result["results"]:
        assert {"model", "response", "tokens", "latency", "cost"} <= set(entry)
        row = svc.request_log.get(entry["request_id"])
        assert row["source"] == "comparison" and row["model"] == entry["model"]
        assert entry["cost"] == pytest.approx(row["cost"]) and entry["tokens"] == row["total_tokens"]
    assert result["winner"] == "b" and result["explanation"]


def test_failing_model_is_reported_and_never_wins(svc, comparator):
    _register(svc, FakeModel("ok"), FakeModel("down").enqueue(ProviderUnavailableError("503 from provider")))
    result = comparator.compare_models(["down", "ok"], "hello", weights={"cost": 1})
    down = next(r for r in result["results"] if r["model"] == "down")
    assert down["status"] == "error" and down["outcome"] == "error"
    assert down["error"] == {"code": "provider_unavailable", "message": "503 from provider"}
    assert svc.request_log.get(down["request_id"])["status"] == "error"
    assert result["winner"] == "ok"
    assert result["comparison_metrics"]["failed"] == 1


def test_repetitions_give_median_latency_and_spread(svc, comparator):
    (model,) = _register(svc, FakeModel("rep", delay=0.01))
    result = comparator.compare_models(["rep"], "hello", repetitions=3)
    entry = result["results"][0]
    stats = entry["latency_stats"]
    assert len(model.calls) == 3 and stats["runs"] == 3 and len(entry["request_ids"]) == 3
    assert stats["min"] <= entry["latency"] == stats["median"] <= stats["max"]
    assert stats["stdev"] >= 0
    assert entry["total_cost"] == pytest.approx(3 * entry["cost"])


def test_scorers_make_quality_decide_and_explain(svc, comparator):
    _register(svc, FakeModel("right", delay=0.05).enqueue("Paris is the capital"),
              FakeModel("wrong").enqueue("Lyon"))
    result = comparator.compare_models(["wrong", "right"], "Capital of France?", reference="Paris",
                                       scorers=[{"type": "contains"}, {"type": "length", "max": 10}])
    assert result["winner"] == "right"
    right = next(r for r in result["results"] if r["model"] == "right")
    assert [s["scorer"] for s in right["scores"]] == ["contains", "length"] and right["quality"] == 1.0
    assert "Deciding part: quality" in result["explanation"]
    assert result["comparison_metrics"]["best_quality_model"] == "right"


def test_llm_judge_and_pairwise_judge_scores(svc, comparator):
    judge = FakeModel("judge").enqueue("Score: 9")
    _register(svc, judge, FakeModel("good", delay=0.05).enqueue("A fine answer"), FakeModel("bad").enqueue("meh"))
    graded = comparator.compare_models(["good"], "q", scorers=[{"type": "judge", "model": "judge", "rubric": "R"}])
    assert graded["results"][0]["scores"][0]["raw"] == 9.0
    judge.enqueue("Winner: A", "Winner: B")  # both orders prefer "good"
    result = comparator.compare_models(["good", "bad"], "q", scorers=[{"type": "pairwise", "model": "judge"}])
    assert result["pairwise"][0]["winner"] == "good"
    assert len(result["pairwise"][0]["request_ids"]) == 2
    assert {r["model"]: r["quality"] for r in result["results"]} == {"good": 1.0, "bad": 0.0}
    assert result["winner"] == "good"


def test_bad_requests_fail_before_any_call(svc, comparator):
    (model,) = _register(svc, FakeModel("only"))
    with pytest.raises(UnknownModelError):
        comparator.compare_models(["only", "missing"], "q")
    with pytest.raises(InvalidScorerError):
        comparator.compare_models(["only"], "q", scorers=[{"type": "exact"}])
    with pytest.raises(ComparisonConfigError):
        comparator.compare_models("only", "q")  # a name, not a list of names
    assert model.calls == []


def test_a_model_compared_with_itself_gives_one_entry_per_listing(svc, comparator):
    (model,) = _register(svc, FakeModel("twin"))
    result = comparator.compare_models(["twin", "twin"], "same question", weights={"cost": 1})
    assert len(model.calls) == 2 and [r["label"] for r in result["results"]] == ["twin#1", "twin#2"]
    assert len({r["request_id"] for r in result["results"]}) == 2
    assert result["winner_details"]["tied"] == ["twin#1", "twin#2"]  # the same answer costs the same
    assert result["winner"] == "twin" and "all twin, so twin is the winner" in result["explanation"]
    store = svc.comparison_store
    assert store.leaderboard()[0] | {"rating": None} == {
        "model": "twin", "win_rate": 1.0, "rating": None, "comparisons": 1, "wins": 1, "ties": 0, "losses": 0,
        "errors": 0}
    assert store.ratings() == {}  # a model never plays itself
    assert store.get_comparison(result["id"])["tie"] is False


def test_runs_of_one_model_against_another_count_as_one_entry_each_time(svc, comparator):
    _register(svc, FakeModel("fast"), FakeModel("slow", delay=0.05))
    result = comparator.compare_models(["slow", "fast", "slow"], "q", weights={"latency": 1})
    assert result["winner"] == "fast" and [r["outcome"] for r in result["results"]] == ["loss", "win", "loss"]
    board = {row["model"]: row for row in svc.comparison_store.leaderboard()}
    assert (board["slow"]["comparisons"], board["slow"]["losses"], board["fast"]["wins"]) == (1, 1, 1)
    ratings = svc.comparison_store.ratings()
    assert ratings["fast"] > 1500 > ratings["slow"] and ratings["fast"] + ratings["slow"] == pytest.approx(3000)
    assert ratings["fast"] == pytest.approx(1500 + 16 + 32 * (1 - expected_score(1516, 1484)))  # two games


def test_entry_labels_and_the_winning_model_of_tied_entries():
    assert entry_labels(["a", "b", "a"]) == ["a#1", "b", "a#2"]
    decision = decide([Candidate("a#1", True, latency=1.0), Candidate("b", True, latency=1.0),
                       Candidate("a#2", True, latency=2.0)], {"latency": 1})
    model_of = {"a#1": "a", "b": "b", "a#2": "a"}
    assert decision.winner is None and winning_model(decision, model_of) is None  # a tie across two models
    assert model_outcomes(decision.outcomes, model_of, None) == {"a": "tie", "b": "tie"}
    assert model_pairs([{"model_a": "a#1", "model_b": "a#2", "score_a": 1.0},
                        {"model_a": "a#2", "model_b": "b", "score_a": 0.0}], model_of) == [
        {"model_a": "a", "model_b": "b", "score_a": 0.0}]


def test_history_win_rates_and_ratings(svc, comparator):
    _register(svc, FakeModel("fast"), FakeModel("slow", delay=0.05))
    for _ in range(3):
        comparator.compare_models(["fast", "slow"], "q", weights={"latency": 1})
    store = svc.comparison_store
    history = store.list_comparisons()
    assert len(history) == 3 and all(c["winner"] == "fast" for c in history)
    assert store.get_comparison(history[0]["id"])["results"][0]["model"] == "fast"
    board = {row["model"]: row for row in store.leaderboard()}
    assert board["fast"]["win_rate"] == 1.0 and board["slow"]["win_rate"] == 0.0
    assert board["fast"]["comparisons"] == 3
    assert board["fast"]["rating"] > 1500 > board["slow"]["rating"]
    assert store.list_comparisons(model="slow") and not store.list_comparisons(model="nobody")
    with pytest.raises(ComparisonNotFoundError):
        store.get_comparison(999)


def test_store_on_sqlite_and_postgres(engine, settings):
    registry = ModelRegistry(engine, settings=settings, register_defaults=False)
    registry.register_model(FakeModel("x"))
    registry.register_model(FakeModel("y").enqueue(RuntimeError("boom")))
    store = ComparisonStore(engine)
    comparison = ModelComparator(registry, store=store).compare_models(["x", "y"], "q")
    stored = store.get_comparison(comparison["id"])
    assert stored["winner"] == "x" and stored["results"][1]["error"]["message"] == "boom"
    assert {r["model"]: (r["wins"], r["errors"]) for r in store.leaderboard()} == {"x": (1, 0), "y": (0, 1)}
    assert store.ratings()["x"] == pytest.approx(1516.0)


def test_migration_matches_the_table_definitions(engine):
    inspector = inspect(engine)
    for table in (comparisons, comparison_entries, comparison_pairs, benchmark_runs, benchmark_results):
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == set(table.columns.keys()), table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, f"{table.name}.{column.name}"
        assert {i["name"] for i in inspector.get_indexes(table.name)} == {i.name for i in table.indexes}


@pytest.mark.local_model
def test_fake_models_and_the_real_local_model(svc, comparator):
    _register(svc, FakeModel("fake-a"), FakeModel("fake-b"))
    from models.local_model import LocalModel

    svc.registry.register_model(LocalModel.from_settings(svc.settings, svc.registry.pricing), aliases=("local",))
    result = comparator.compare_models(["fake-a", "fake-b", "local"], "Name a colour.", max_tokens=4)
    local = next(r for r in result["results"] if r["model"] == svc.registry.resolve("local"))
    assert local["status"] == "success" and local["response"] and 0 < local["tokens"]
    assert svc.request_log.get(local["request_id"])["source"] == "comparison"
    assert len(result["results"]) == 3 and result["explanation"]

"""Benchmarks: the dataset format, runs over FakeModels, progress, stored results, reports and recommendation."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from comparison.benchmark import BenchmarkRunner
from comparison.dataset import load_dataset, parse_dataset
from comparison.errors import (
    BenchmarkNotFoundError,
    BenchmarkNotResumableError,
    ComparisonConfigError,
    InvalidDatasetError,
)
from comparison.reports import percentile, recommend, render_markdown
from comparison.scorers import build_reference_scorer
from comparison.tables import benchmark_runs
from storage.clock import utcnow
from storage.heartbeat import STALE_AFTER
from tests.fakes import FakeModel
from tests.waiting import wait_for

ITEMS = [
    {"id": "q1", "task": "qa", "prompt": "Capital of France?", "reference": "Paris"},
    {"id": "q2", "task": "qa", "prompt": "Largest planet?", "reference": "Jupiter"},
    {"id": "x1", "task": "extraction", "prompt": "Extract name as JSON",
     "scorers": [{"type": "json", "expected": {"name": "Ann"}}]},
]


def _dataset(items=ITEMS):
    return parse_dataset([json.dumps(item) for item in items], "mini")


def test_builtin_dataset_covers_the_four_tasks():
    dataset = load_dataset()
    assert len(dataset.items) >= 20
    tasks = {item.task for item in dataset.items}
    assert {"factual_qa", "extraction", "summarization", "classification"} <= tasks
    assert all(item.scorers for item in dataset.items)
    assert len(dataset.select(tasks=["extraction"]).items) == sum(i.task == "extraction" for i in dataset.items)
    assert len(dataset.select(limit=4).items) == 4


@pytest.mark.parametrize(("lines", "message"), [
    (["{not json"], "Line 1: not valid JSON"),
    (['{"id": "a"}'], "non-empty 'prompt'"),
    (['{"prompt": "p", "scorers": [{"type": "exact"}]}'], "needs a non-empty 'reference'"),
    (['{"id": "a", "prompt": "p"}', '{"id": "a", "prompt": "q"}'], "Line 2: duplicate item id"),
    ([""], "has no items"),
])
def test_invalid_datasets_name_the_problem(lines, message):
    with pytest.raises(InvalidDatasetError, match=message):
        parse_dataset(lines, "bad")


def test_reference_without_scorers_defaults_to_contains():
    assert _dataset().items[0].scorers == [{"type": "contains"}]


def test_benchmark_run_reports_accuracy_latency_and_cost(svc):
    good = FakeModel("good").enqueue("It is Paris", "Jupiter", '{"name": "Ann"}')
    poor = FakeModel("poor", pricing=None).enqueue("Paris", RuntimeError("boom"), "no json")
    for model in (good, poor):
        svc.registry.register_model(model)
    progress: list[tuple[int, int]] = []
    run_id, report = svc.benchmarks.run(["good", "poor"], _dataset(), on_progress=lambda d, t: progress.append((d, t)))
    assert sorted(progress) == [(n, 6) for n in range(1, 7)]
    by_model = {s["model"]: s for s in report["models"]}
    assert by_model["good"]["accuracy"] == 1.0 and by_model["good"]["correct"] == 3
    assert by_model["poor"]["accuracy"] == pytest.approx(1 / 3) and by_model["poor"]["errors"] == 1
    results = svc.comparison_store.benchmark_results(run_id)
    logged = sum(svc.request_log.get(r["request_id"])["cost"] for r in results if r["model"] == "good")
    assert by_model["good"]["total_cost"] == pytest.approx(logged)
    assert by_model["good"]["cost_per_correct"] == pytest.approx(logged / 3)
    assert by_model["poor"]["total_cost"] is None and by_model["poor"]["cost_per_correct"] is None
    assert by_model["good"]["latency_p50"] is not None and by_model["good"]["by_task"]["qa"]["correct"] == 2
    assert report["recommendation"]["best_quality"]["model"] == "good"
    assert report["recommendation"]["cheapest_meeting_bar"]["model"] == "good"
    run = svc.comparison_store.get_benchmark(run_id)
    assert run["status"] == "completed" and run["progress"] == {"completed": 6, "total": 6, "percent": 100.0}
    assert run["report"] == report
    assert all(r["request_id"] for r in results)
    assert {r["source"] for r in svc.request_log.list(source="comparison")} == {"comparison"}


def test_two_simultaneous_executions_of_one_run_start_it_once(svc):
    import threading

    model = FakeModel("m", delay=0.2)
    svc.registry.register_model(model)
    run_id = svc.benchmarks.create(["m"], _dataset())
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def execute() -> None:
        barrier.wait()
        try:
            outcomes.append(svc.benchmarks.execute(run_id))
        except ComparisonConfigError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=execute) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(type(o).__name__ for o in outcomes) == ["ComparisonConfigError", "dict"]
    run = svc.comparison_store.get_benchmark(run_id)
    assert run["status"] == "completed" and run["completed"] == run["total"]  # each answer stored once
    assert len(model.calls) == len(_dataset().items)


def test_background_run_and_failure_is_recorded(svc, monkeypatch):
    svc.registry.register_model(FakeModel("m"))
    run_id = svc.benchmarks.start(["m"], _dataset())
    assert svc.benchmarks.wait(run_id, timeout=10)
    assert svc.comparison_store.get_benchmark(run_id)["status"] == "completed"
    with pytest.raises(ComparisonConfigError, match="already been started"):
        svc.benchmarks.execute(run_id)  # running a finished run again would double its results

    def explode(*_args, **_kwargs):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr("comparison.benchmark.build_report", explode)
    failed = svc.benchmarks.start(["m"], _dataset())
    assert svc.benchmarks.wait(failed, timeout=10)
    run = svc.comparison_store.get_benchmark(failed)
    assert run["status"] == "failed" and "scoring broke" in run["error"]
    with pytest.raises(BenchmarkNotFoundError):
        svc.comparison_store.get_benchmark(12345)


def _left_running(svc, owner: str | None, heartbeat_at: datetime | None) -> int:
    """A benchmark run as the process executing it left it (no owner, no heartbeat: from before heartbeats)."""
    run_id = svc.comparison_store.create_benchmark(dataset="mini", models=["m"], total=1, params={"items": []})
    with svc.engine.begin() as conn:
        conn.execute(update(benchmark_runs).where(benchmark_runs.c.id == run_id).values(
            status="running", owner=owner, heartbeat_at=heartbeat_at))
    return run_id


def _heartbeat_at(svc, run_id: int) -> datetime | None:
    with svc.engine.connect() as conn:
        return conn.execute(select(benchmark_runs.c.heartbeat_at).where(benchmark_runs.c.id == run_id)).scalar_one()


def test_a_new_runner_marks_stale_and_legacy_running_benchmarks_interrupted(svc, client):
    died = _left_running(svc, "gone-host:1:dead", utcnow() - STALE_AFTER - timedelta(seconds=1))
    legacy = _left_running(svc, None, None)
    alive = _left_running(svc, "other-host:2:beef", utcnow())
    pending = svc.comparison_store.create_benchmark(dataset="mini", models=["m"], total=1, params={"items": []})

    runner = BenchmarkRunner(svc.registry, svc.comparison_store)
    assert runner.interrupted_at_start == 2
    status = {run_id: svc.comparison_store.get_benchmark(run_id)["status"] for run_id in (died, legacy, alive, pending)}
    assert status == {died: "interrupted", legacy: "interrupted", alive: "running", pending: "pending"}
    shown = client.get(f"/api/benchmarks/{died}").get_json()
    assert shown["status"] == "interrupted" and "process stopped" in shown["error"]
    assert svc.comparison_store.mark_interrupted_benchmarks(stale_after=timedelta(0)) == 1  # `alive` falls silent


def test_a_new_runner_leaves_alone_and_heartbeats_the_benchmark_another_runner_executes(svc, monkeypatch):
    monkeypatch.setattr(svc.benchmarks.heartbeat, "interval", 0.05)
    slow = FakeModel("slow", delay=0.3).enqueue("Paris")
    svc.registry.register_model(slow)
    foreign = _left_running(svc, "other-host:2:beef", datetime(2020, 1, 1))
    run_id = svc.benchmarks.start(["slow"], _dataset(ITEMS[:1]))
    wait_for(lambda: slow.calls)

    run = svc.comparison_store.get_benchmark(run_id)
    assert run["status"] == "running" and run["owner"] == svc.benchmarks.owner
    first = _heartbeat_at(svc, run_id)
    wait_for(lambda: _heartbeat_at(svc, run_id) > first)
    assert not slow.spans, "the heartbeat moved only after the answer was in, not while the model call ran"
    other = BenchmarkRunner(svc.registry, svc.comparison_store)  # e.g. a gunicorn worker starting meanwhile
    assert other.interrupted_at_start == 1 and other.owner != svc.benchmarks.owner  # `foreign` only
    assert svc.comparison_store.get_benchmark(run_id)["status"] == "running"

    assert svc.benchmarks.wait(run_id, timeout=10)
    assert svc.comparison_store.get_benchmark(run_id)["status"] == "completed"
    assert svc.comparison_store.get_benchmark(foreign)["status"] == "interrupted"
    wait_for(lambda: svc.benchmarks.heartbeat._thread is None)  # no run in flight: the thread ends


def test_an_interrupted_benchmark_resumes_asking_only_for_the_answers_it_lacks(svc, client):
    model = FakeModel("m").enqueue("It is Paris", "Jupiter", '{"name": "Ann"}')
    svc.registry.register_model(model)
    run_id = svc.benchmarks.create(["m"], _dataset())
    assert svc.comparison_store.claim_benchmark(run_id, "gone-host:1:dead")  # a worker that then died ...
    svc.benchmarks._run_item(run_id, _dataset().items[0], [model], svc.comparison_store.get_benchmark(run_id)["params"],
                             lambda result: svc.comparison_store.record_benchmark_result(run_id, result))
    with svc.engine.begin() as conn:  # ... after its first answer
        conn.execute(update(benchmark_runs).where(benchmark_runs.c.id == run_id).values(
            heartbeat_at=utcnow() - STALE_AFTER - timedelta(seconds=1)))
    assert svc.benchmarks.reclaim_interrupted() == 1  # what the service's sweep does
    with pytest.raises(BenchmarkNotResumableError, match="is running"):
        svc.benchmarks.resume(_left_running(svc, "other-host:2:beef", utcnow()))  # a live runner's run
    response = client.post(f"/api/benchmarks/{run_id}/resume")
    assert response.status_code == 202 and response.headers["Location"].endswith(f"/api/benchmarks/{run_id}")
    assert svc.benchmarks.wait(run_id, timeout=10)
    run = svc.comparison_store.get_benchmark(run_id)
    assert run["status"] == "completed" and run["error"] is None
    assert run["progress"] == {"completed": 3, "total": 3, "percent": 100.0}
    assert [call.prompt for call in model.calls] == [item.prompt for item in _dataset().items]  # none asked twice
    assert run["report"]["models"][0]["correct"] == 3

    again = client.post(f"/api/benchmarks/{run_id}/resume")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "benchmark_not_resumable"


def test_percentile_matches_linear_interpolation():
    values = [0.1, 0.2, 0.3, 0.4, 1.0]
    assert percentile(values, 50) == pytest.approx(0.3)
    assert percentile(values, 95) == pytest.approx(0.88)  # numpy.percentile(values, 95)
    assert percentile([0.5], 95) == 0.5 and percentile([], 50) is None


def test_recommendation_cheapest_meeting_the_bar_and_fastest():
    def summary(model, accuracy, cost, p50):
        return {"model": model, "answered": 10, "accuracy": accuracy, "mean_score": accuracy,
                "total_cost": cost, "latency_p50": p50}

    rec = recommend([summary("big", 0.95, 0.50, 2.0), summary("mid", 0.8, 0.05, 1.0),
                     summary("tiny", 0.4, 0.0, 0.2)], quality_bar=0.75)
    assert (rec["best_quality"]["model"], rec["cheapest_meeting_bar"]["model"], rec["fastest"]["model"]) == (
        "big", "mid", "tiny")
    nobody = recommend([summary("tiny", 0.4, 0.0, 0.2)], quality_bar=0.75)
    assert nobody["cheapest_meeting_bar"]["model"] is None and "no priced model" in nobody["cheapest_meeting_bar"][
        "reason"]


def test_markdown_report(svc):
    svc.registry.register_model(FakeModel("md").enqueue("Paris"))
    _, report = svc.benchmarks.run(["md"], _dataset(ITEMS[:1]))
    text = render_markdown(report)
    assert text.startswith("# Benchmark run")
    assert "| md | 100.0% (1/1) |" in text and "Cost per correct" in text
    assert "**Best quality:** md" in text


@pytest.mark.parametrize(("item_id", "answer", "correct"), [
    ("classify-great-phone", "The sentiment of the text is positive.", True),
    ("classify-broken-kettle", "The text is positive.", False),
    ("classify-broken-kettle", "Negative.", True),
    ("classify-movie", "negative, not positive", False),
    ("classify-spam", "The message is spam.", True),
    ("classify-spam", "not spam", False),
    ("classify-meeting", "Not spam.", True),
    ("classify-meeting", "spam", False),
    ("extract-person", '```json\n{"name": "Maria Lopez", "age": 34}\n```', True),
    ("extract-person", '{"name": "Maria Lopez", "age": "34"}', False),
    ("qa-france-capital", "The capital of France is Paris.", True),
])
def test_builtin_items_score_real_answers(item_id, answer, correct):
    item = next(i for i in load_dataset().items if i.id == item_id)
    scores = [build_reference_scorer(spec, item.reference).score(answer, item.prompt) for spec in item.scorers]
    assert all(s.passed for s in scores) is correct

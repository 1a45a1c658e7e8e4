"""The dashboard's Comparisons and Experiments pages: what they show is what the JSON API reports, and the
experiment lifecycle buttons call the same transitions (a refused one is a message on the page, never a 500)."""

from __future__ import annotations

import re

import pytest

from api.dashboard.experiments import ci_bars
from tests.fakes import FakeModel


def _token(page: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def _variant_row(page: str, variant: str) -> str:
    rows = [row for row in re.findall(r'<tr class="variant">.*?</tr>', page, re.S) if f"<td>{variant}" in row]
    assert len(rows) == 1, variant
    return rows[0]


@pytest.fixture
def second_model(svc):
    svc.registry.register_model(FakeModel("fake-b"))


def test_comparisons_page_lists_history_leaderboard_and_benchmarks(client, svc, second_model):
    made = client.post("/api/compare", json={"models": ["fake-model", "fake-b"], "prompt": "Say <hi>"})
    comparison = made.get_json()["comparison"]
    run_id = svc.comparison_store.create_benchmark(dataset="builtin", models=["fake-b"], total=4, params={})
    page = client.get("/dashboard/comparisons")
    assert page.status_code == 200
    assert f'/dashboard/comparisons/{comparison["id"]}">#{comparison["id"]}</a>' in page.text
    assert "Say &lt;hi&gt;" in page.text and "<hi>" not in page.text  # autoescaped
    board = re.search(r'<table id="leaderboard">.*?</table>', page.text, re.S)
    assert board is not None
    for row in client.get("/api/comparisons/leaderboard").get_json()["leaderboard"]:
        assert f"<td>{row['model']}</td><td class=\"num\">{row['rating']:.1f}</td>" in board.group(0)
    benchmarks = re.search(r'<table id="benchmarks">.*?</table>', page.text, re.S)
    assert benchmarks is not None and f"#{run_id}" in benchmarks.group(0) and "pending" in benchmarks.group(0)


def test_comparison_detail_shows_each_answer_and_the_winner(client, second_model):
    comparison = client.post("/api/compare", json={"models": ["fake-model", "fake-b"],
                                                    "prompt": "hello"}).get_json()["comparison"]
    page = client.get(f"/dashboard/comparisons/{comparison['id']}")
    assert page.status_code == 200
    assert '<pre id="prompt">hello</pre>' in page.text
    answers = re.search(r'<table id="answers">.*?</table>', page.text, re.S)
    assert answers is not None and answers.group(0).count("echo: hello") == 2
    assert f'<div class="value" id="winner">{comparison["winner"] or "tie"}</div>' in page.text
    assert client.get("/dashboard/comparisons/999").status_code == 404


@pytest.fixture
def experiment_id(client, second_model) -> int:
    """A draft two-variant experiment (control "terse" on fake-model)."""
    response = client.post("/api/experiment", json={"name": "tone test", "control": "terse", "variants": [
        {"name": "terse", "model": "fake-model"}, {"name": "chatty", "model": "fake-b"}]})
    return response.get_json()["experiment_id"]


def _status(client, experiment_id: int) -> str:
    return client.get(f"/api/experiment/{experiment_id}").get_json()["experiment"]["status"]


def _act(client, experiment_id: int, action: str, token: str | None):
    data = {"csrf_token": token} if token is not None else {}
    return client.post(f"/dashboard/experiments/{experiment_id}/{action}", data=data)


def test_experiments_page_lists_an_experiment(client, experiment_id):
    page = client.get("/dashboard/experiments")
    assert page.status_code == 200
    assert f'/dashboard/experiments/{experiment_id}">#{experiment_id}</a>' in page.text
    assert "tone test" in page.text and '<td class="status">draft</td>' in page.text


def test_experiment_detail_shows_variants_counts_intervals_and_decision(client, experiment_id):
    client.post(f"/api/experiment/{experiment_id}/start")
    for user in range(6):
        client.post(f"/api/experiment/{experiment_id}/test", json={"user_id": f"u{user}", "prompt": "hi"})
    outcomes = [{"variant": variant, "success": i % 2 == 0, "rating": 1 + i % 5}
                for variant in ("terse", "chatty") for i in range(10)]
    client.post(f"/api/experiment/{experiment_id}/record", json={"outcomes": outcomes})
    stats = client.get(f"/api/experiment/{experiment_id}/stats").get_json()["stats"]
    page = client.get(f"/dashboard/experiments/{experiment_id}").text
    for variant in stats["variants"]:
        row = _variant_row(page, variant["name"])
        assert f"<td>{variant['model']}</td>" in row
        assert f'<td class="num">{variant["assigned"]}</td><td class="num">{variant["exposures"]}</td>' in row
        assert f'data-ci="{variant["name"]} conversion"' in row and f'data-ci="{variant["name"]} rating"' in row
    assert sum(v["assigned"] for v in stats["variants"]) == 6
    assert f'<div class="value" id="decision">{stats["decision"].replace("_", " ")}</div>' in page
    assert stats["reason"] in page and "Adjusted p" in page


def test_lifecycle_buttons_change_the_status_and_a_refused_one_is_a_message(client, experiment_id):
    page = client.get(f"/dashboard/experiments/{experiment_id}").text
    token = _token(page)
    assert f"/dashboard/experiments/{experiment_id}/start" in page  # the one action a draft allows
    assert f"/dashboard/experiments/{experiment_id}/complete" not in page
    refused = _act(client, experiment_id, "complete", token)
    assert refused.status_code == 409
    assert '<p class="error" id="refused">Cannot complete an experiment that is draft</p>' in refused.text
    assert _status(client, experiment_id) == "draft"
    for action, status in (("start", "running"), ("pause", "paused"), ("complete", "completed")):
        done = _act(client, experiment_id, action, token)
        assert done.status_code == 303 and done.headers["Location"] == f"/dashboard/experiments/{experiment_id}"
        assert _status(client, experiment_id) == status
    assert _act(client, experiment_id, "start", token).status_code == 409
    assert _act(client, 999, "start", token).status_code == 404


def test_a_lifecycle_post_without_its_csrf_token_is_refused(client, experiment_id):
    client.get(f"/dashboard/experiments/{experiment_id}")
    assert _act(client, experiment_id, "start", None).status_code == 400
    assert _act(client, experiment_id, "start", "forged").status_code == 400
    assert _status(client, experiment_id) == "draft"


def test_ci_bars_share_one_axis_per_metric():
    summaries = [{"name": name, "conversion": {"rate": rate, "ci": ci}, "rating": {"mean": mean, "ci": rating_ci}}
                 for name, rate, ci, mean, rating_ci in (("a", 0.5, [0.25, 0.75], 2.0, [1.0, 3.0]),
                                                         ("b", 0.5, [0.25, 0.75], 3.0, [2.0, 4.0]),
                                                         ("new", None, None, None, None))]
    conversion = ci_bars(summaries, "conversion")
    assert set(conversion) == {"a", "b"}  # no interval yet, no bar
    assert (conversion["a"].left, conversion["a"].width, conversion["a"].mark) == (25.0, 50.0, 50.0)
    rating = ci_bars(summaries, "rating")
    assert rating["a"].width == rating["b"].width and rating["a"].left < rating["b"].left
    assert 0 < rating["a"].left and rating["b"].left + rating["b"].width < 100

"""Where spend could drop, with the savings each change would have brought over the last `WINDOW_DAYS` (30) days,
which stand for a month.

Cheaper model. For each model with spend in the window, a candidate is another registered chat model with a price
that was measured as good and costs less:
- as good: the two met head to head in stored comparisons at least `MIN_OUTCOMES` (5) times and the candidate's
  mean score there is at least 0.5 (a win scores 1, a draw 0.5, a loss 0), so it won at least as often as it lost.
  Head to head, not Elo: ratings across different opponents and prompts would compare what was never compared;
- costs less: the window's tokens of the model (input, cached input, output) re-priced at the candidate's base
  tier come to less than their recorded cost. Savings = recorded cost - re-priced cost. Aggregated tokens cannot
  say which calls crossed a long-context threshold, so the base tier prices them all.
The candidate with the largest savings is named.

Cache. Successful chat calls in the window that were not cache hits themselves, grouped by model and prompt text;
a group of n > 1 calls is n - 1 calls the exact cache would have answered, so its savings are its cost minus that
of its first call (the lowest id). Calls that repeat on purpose (comparisons and benchmarks, health probes, the
semantic cache's embeddings) are left out. An estimate: the exact cache key also covers the system prompt, earlier
turns and parameters, which the prompt text does not show. Its cost is bounded: only the newest `SAMPLE_CALLS`
calls of the window are grouped (read through the `created_at` index), and when the window holds more, the
figures are scaled up by the window's calls (from the rollups) over the sample's; `sampled` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select, tuple_

from models.model_registry import ModelRegistry
from models.pricing import ModelPricing
from models.request_log import request_log
from models.rollups import STATUS_COLUMNS, hour_of
from monitoring import rollup_reads
from storage.database import read

WINDOW_DAYS = 30
MIN_OUTCOMES = 5
AS_GOOD_SCORE = 0.5
REPEAT_SOURCES_LEFT_OUT = ("comparison", "probe", "cache")
TOP_REPEATS = 20
SAMPLE_CALLS = 20_000  # grouping the whole window took 1.1 s at 1M rows; 20k take about 20 ms
PROMPT_PREVIEW_CHARS = 120

Outcome = tuple[str, str, float]  # (model_a, model_b, score_a), as comparisons store pairwise outcomes


def chat_prices(registry: ModelRegistry) -> dict[str, ModelPricing]:
    """The price of every registered chat model that calls a provider (a group has no price of its own)."""
    models = registry.models
    return {name: model.pricing for name in registry.deployment_names()
            if (model := models[name]).pricing is not None and model.capabilities.chat}


def head_to_head(outcomes: Iterable[Outcome]) -> dict[tuple[str, str], tuple[int, float]]:
    """Per ordered pair (x, y): how often x met y and x's summed score against y."""
    meetings: dict[tuple[str, str], tuple[int, float]] = {}
    for model_a, model_b, score_a in outcomes:
        for pair, score in (((model_a, model_b), score_a), ((model_b, model_a), 1.0 - score_a)):
            count, total = meetings.get(pair, (0, 0.0))
            meetings[pair] = (count + 1, total + score)
    return meetings


def recommendations(engine: Engine, prices: Mapping[str, ModelPricing], outcomes: Iterable[Outcome],
                    now: datetime, owner: str | None = None) -> dict[str, Any]:
    """Both kinds over the window ending at `now`; `owner` limits the repeated prompts to one API key's calls."""
    since = hour_of(now - timedelta(days=WINDOW_DAYS))  # the rollups' granularity, for both kinds
    return {
        "since": since.isoformat() + "Z", "until": now.isoformat() + "Z", "window_days": WINDOW_DAYS,
        "cheaper_models": cheaper_models(engine, prices, outcomes, since, now),
        "cache": repeated_prompts(engine, since, now, owner),
    }


def cheaper_models(engine: Engine, prices: Mapping[str, ModelPricing], outcomes: Iterable[Outcome],
                   since: datetime, until: datetime) -> list[dict[str, Any]]:
    """For each model with spend in `[since, until)`, the cheaper model as good as it that saves the most."""
    meetings = head_to_head(outcomes)
    found = []
    for model, sums in rollup_reads.totals_by_model(engine, since, until).items():
        cost = float(sums["cost"])
        if cost <= 0:
            continue
        tokens = {name: int(sums[name]) for name in ("input_tokens", "cached_tokens", "output_tokens")}
        options = []
        for candidate, pricing in prices.items():
            count, score = meetings.get((candidate, model), (0, 0.0))
            if candidate == model or count < MIN_OUTCOMES or score / count < AS_GOOD_SCORE:
                continue
            repriced = pricing.model_copy(update={"long_context": None}).cost(
                tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"])
            if repriced < cost:
                options.append({"model": model, "candidate": candidate, "outcomes": count,
                                "candidate_score": score / count, **tokens, "current_cost": cost,
                                "candidate_cost": repriced, "monthly_savings": cost - repriced})
        if options:
            found.append(max(options, key=lambda o: (o["monthly_savings"], o["candidate"])))
    return sorted(found, key=lambda o: (-o["monthly_savings"], o["model"]))


def repeated_prompts(engine: Engine, since: datetime, until: datetime, owner: str | None = None,
                     limit: int = TOP_REPEATS) -> dict[str, Any]:
    """The groups of repeated prompts that would have saved the most, and the savings of every group; two
    grouped queries over the indexed `created_at` window, so the answer stays small whatever the log holds."""
    log = request_log
    window: list[ColumnElement[bool]] = [log.c.created_at >= since, log.c.created_at < until]
    oldest = (select(log.c.created_at, log.c.id).where(*window).order_by(log.c.created_at.desc(), log.c.id.desc())
              .offset(SAMPLE_CALLS - 1).limit(1))
    with read(engine) as conn:
        boundary = conn.execute(oldest).first()  # None: the whole window fits in the sample
    scale = 1.0
    if boundary is not None:  # the sample's own lower bound, so that the index range starts there
        window = [log.c.created_at >= boundary.created_at, log.c.created_at < until,
                  tuple_(log.c.created_at, log.c.id) >= tuple_(boundary.created_at, boundary.id)]
        calls = rollup_reads.totals_by_model(engine, since, until).values()
        scale = max(sum(float(sums[column]) for sums in calls for column in STATUS_COLUMNS.values()) / SAMPLE_CALLS,
                    1.0)
    query = select(
        log.c.model, log.c.prompt, func.count().label("calls"),
        func.sum(func.coalesce(log.c.cost, 0.0)).label("cost"), func.min(log.c.id).label("first_id"),
    ).where(
        *window, log.c.status == "success", log.c.operation == "chat",
        log.c.cache.is_(None), log.c.prompt.is_not(None), log.c.source.not_in(REPEAT_SOURCES_LEFT_OUT),
    )
    if owner is not None:
        query = query.where(log.c.api_key_id == owner)
    groups = query.group_by(log.c.model, log.c.prompt).having(func.count() > 1).subquery()
    first = log.alias("first_call")
    savings = (groups.c.cost - func.coalesce(first.c.cost, 0.0)).label("savings")
    joined = groups.join(first, first.c.id == groups.c.first_id)
    top = (select(groups.c.model, groups.c.prompt, groups.c.calls, groups.c.cost, savings).select_from(joined)
           .order_by(savings.desc(), groups.c.model, groups.c.first_id).limit(limit))
    totals = select(func.count(), func.sum(groups.c.calls - 1), func.sum(savings)).select_from(joined)
    with read(engine) as conn:
        rows = conn.execute(top).mappings().all()
        count, repeats, total = conn.execute(totals).one()
    return {
        "groups": int(count), "repeated_calls": round((repeats or 0) * scale),
        "monthly_savings": float(total or 0.0) * scale,
        "sampled": None if boundary is None else {"calls": SAMPLE_CALLS, "scale": scale},
        "top": [{"model": row["model"], "prompt": row["prompt"][:PROMPT_PREVIEW_CHARS], "calls": int(row["calls"]),
                 "cost": float(row["cost"]), "savings": float(row["savings"])} for row in rows],
    }

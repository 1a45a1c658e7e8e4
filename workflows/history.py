"""The original's workflow history rows, built from stored runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ORIGINAL_STEP_KEYS = ("model", "prompt", "response", "tokens", "latency", "cost")


def history_row(run: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run as a history row: its summary plus the original's `id`, `name`, `timestamp`, and `steps`
    and `result` as the JSON text the original stored (the steps as defined, and each step's result)."""
    results = [{"step": step["position"] + 1, **{key: step[key] for key in ORIGINAL_STEP_KEYS}}
               for step in run["steps"]]
    summary = {key: value for key, value in run.items() if key not in ("definition", "steps")}
    return {**summary, "id": run["run_id"], "name": run["workflow_name"], "timestamp": run["created_at"],
            "steps": json.dumps(run["definition"]["steps"]), "result": json.dumps(results)}

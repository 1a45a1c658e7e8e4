"""The models: what each registered model is (provider, prices, context window, capabilities), how healthy it is
(the `/api/health/models` score and breaker), and for each group, its strategy and how it split its traffic."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template

from api.dashboard import bp, page
from api.services import services
from models.routing.group import GROUP_PROVIDER
from storage.clock import utcnow

SPLIT_WINDOW = timedelta(hours=24)

page("models", "Models")


@bp.get("/models")
def models() -> str:
    svc = services()
    entries = svc.registry.describe()  # what `/api/models` lists
    health = {h.model: h for h in svc.health.report(svc.registry.deployment_names())}
    served = svc.request_log.served_by_group(utcnow() - SPLIT_WINDOW)
    groups = [_with_split(entry, served.get(entry["name"], {})) for entry in entries
              if entry["provider"] == GROUP_PROVIDER]
    return render_template("dashboard/models.html", models=[e for e in entries if e["provider"] != GROUP_PROVIDER],
                           groups=groups, health=health)


def _with_split(group: dict[str, Any], served: dict[str, int]) -> dict[str, Any]:
    """Each deployment's calls served and its share of the group's, over the split window."""
    total = sum(served.values())
    deployments = [{**d, "served": served.get(d["model"], 0),
                    "share": served.get(d["model"], 0) / total if total else None} for d in group["deployments"]]
    return {**group, "deployments": deployments, "served": total}

"""The dashboard: server-rendered pages under `/dashboard` (Flask and Jinja2), with uPlot vendored for charts, so
it works offline. Pages read the rollups and the stores the JSON API reads; forms post back with a CSRF token.

Each page is a module that adds its routes to `bp`; `access` guards them all (an admin key once, then a session).
"""

from __future__ import annotations

from flask import Blueprint, Flask

from core.settings import Settings
from storage.app_secrets import shared_secret

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
               static_folder="static")
NAV: list[tuple[str, str]] = []  # (endpoint, label) of each page, in menu order; pages add themselves
MENU_ORDER = ("overview", "models", "request_log", "workflows", "comparisons", "experiments", "budgets", "costs",
              "playground")


def page(endpoint: str, label: str) -> None:
    """List a page in the menu, at its place in MENU_ORDER."""
    NAV.append((f"dashboard.{endpoint}", label))
    NAV.sort(key=lambda item: MENU_ORDER.index(item[0].removeprefix("dashboard.")))


@bp.app_context_processor
def nav_links() -> dict[str, object]:
    return {"nav_links": NAV}


def register_dashboard(app: Flask, settings: Settings) -> None:
    """The pages, and the signed session cookie they use: HttpOnly and SameSite=Strict, signed with SECRET_KEY or
    a secret the database keeps for every worker."""
    from api.dashboard import (  # noqa: F401  (their routes are added to bp)
        access,
        budgets,
        comparisons,
        costs,
        experiments,
        models_page,
        overview,
        playground,
        request_log,
        workflows_page,
    )
    from api.services import services

    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    app.config.update(SECRET_KEY=secret or shared_secret(services(app).engine, "session"),
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.register_blueprint(bp)

"""Who may see the dashboard: anyone while the service has no API keys; once it has, a visitor signs in with an
admin key (posted in a form, never in a URL) and then holds a session. Every form posts a CSRF token."""

from __future__ import annotations

from flask import abort, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf, validate_csrf
from wtforms import ValidationError

from api.auth import AUTHENTICATOR_KEY, Authenticator
from api.dashboard import bp

SIGN_IN = "dashboard.sign_in"
OPEN_ENDPOINTS = {SIGN_IN, "dashboard.static"}


def _authenticator() -> Authenticator:
    return current_app.extensions[AUTHENTICATOR_KEY]


@bp.before_request
def guard() -> ResponseReturnValue | None:
    """Refuse a visitor without a session (once keys exist) and any form without a valid CSRF token."""
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token") or request.headers.get("X-CSRF-Token"))
        except ValidationError:
            abort(400, "The form expired or did not come from this dashboard; reload the page and try again")
    if request.endpoint in OPEN_ENDPOINTS or not _authenticator().keys_required():
        return None
    if session.get("dashboard_key_id") is None:
        return redirect(url_for(SIGN_IN, next=request.path))
    return None


@bp.app_context_processor
def csrf_token() -> dict[str, object]:
    return {"csrf_token": generate_csrf}


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    """The sign-in form; an admin key starts a session, any other key is refused."""
    error = None
    if request.method == "POST":
        identity = _authenticator().identify(request.form.get("key", "").strip())
        if identity is not None and identity.admin:
            session.clear()
            session["dashboard_key_id"] = identity.id
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/dashboard") else url_for("dashboard.overview"))
        error = "That is not an admin key of this service."
    return render_template("dashboard/sign_in.html", error=error)


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for(SIGN_IN))

"""Who may see the dashboard: everyone while the service has no keys; once it has, only a visitor who signed in
with an admin key (in a form, never a URL) and holds the session cookie, which is HttpOnly and SameSite=Strict.
Every form post needs the page's CSRF token."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from api.auth import create_key
from api.services import api_keys
from core.settings import Settings


def _token(page: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match is not None
    return match.group(1)


@pytest.fixture
def keyed(sqlite_url):
    """An app whose service has API keys: an admin key and a tenant's."""
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": sqlite_url})
    app = create_app(settings, {"TESTING": True})
    _, admin = create_key(api_keys(app), "ops", admin=True)
    _, tenant = create_key(api_keys(app), "team-a")
    return app, admin, tenant


def test_without_keys_the_dashboard_is_open(client):
    page = client.get("/dashboard/")
    assert page.status_code == 200 and "Overview" in page.text


def test_with_keys_a_visitor_without_a_session_is_sent_to_sign_in(keyed):
    app, _, _ = keyed
    client = app.test_client()
    refused = client.get("/dashboard/")
    assert refused.status_code == 302 and "/dashboard/sign-in" in refused.headers["Location"]
    with client.get("/dashboard/static/dashboard.css") as asset:  # a file response: closed after use
        assert asset.status_code == 200  # assets need no session


def test_an_admin_key_starts_a_session_and_a_tenant_key_does_not(keyed):
    app, admin, tenant = keyed
    client = app.test_client()
    form = client.get("/dashboard/sign-in").text
    token = _token(form)
    denied = client.post("/dashboard/sign-in", data={"key": tenant, "csrf_token": token})
    assert denied.status_code == 200 and "not an admin key" in denied.text
    signed = client.post("/dashboard/sign-in?next=/dashboard/", data={"key": admin, "csrf_token": token})
    assert signed.status_code == 302 and signed.headers["Location"] == "/dashboard/"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and admin not in cookie
    assert client.get("/dashboard/").status_code == 200
    client.post("/dashboard/sign-out", data={"csrf_token": _token(client.get("/dashboard/").text)})
    assert client.get("/dashboard/").status_code == 302


def test_a_form_without_its_csrf_token_is_refused(keyed):
    app, admin, _ = keyed
    client = app.test_client()
    client.get("/dashboard/sign-in")
    assert client.post("/dashboard/sign-in", data={"key": admin}).status_code == 400
    assert client.post("/dashboard/sign-in", data={"key": admin, "csrf_token": "forged"}).status_code == 400


def test_sign_in_never_redirects_off_the_dashboard(keyed):
    app, admin, _ = keyed
    client = app.test_client()
    token = _token(client.get("/dashboard/sign-in").text)
    signed = client.post("/dashboard/sign-in?next=https://evil.example/", data={"key": admin, "csrf_token": token})
    assert signed.headers["Location"] == "/dashboard/"

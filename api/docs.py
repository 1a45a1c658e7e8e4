"""Public API docs: the generated OpenAPI document and Swagger UI, served offline from bundled assets."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import flask_openapi3_swagger
from flask import Blueprint, Response, current_app, jsonify, render_template_string
from flask_openapi3 import OpenAPI

SWAGGER_ASSETS = Path(flask_openapi3_swagger.__file__).parent / "templates" / "swagger"

bp = Blueprint("docs", __name__, static_folder=str(SWAGGER_ASSETS), static_url_path="/docs/assets")

SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{{ title }} - API docs</title>
  <link rel="icon" href="{{ url_for('docs.static', filename='images/swagger.svg') }}">
  <link rel="stylesheet" href="{{ url_for('docs.static', filename='css/swagger-ui.css') }}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{{ url_for('docs.static', filename='js/swagger-ui-bundle.js') }}"></script>
  <script nonce="{{ nonce }}">
    window.ui = SwaggerUIBundle({
      url: {{ url_for('docs.openapi_document')|tojson }},
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      tryItOutEnabled: true
    });
  </script>
</body>
</html>
"""


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3 document, generated from the views' pydantic models."""
    return jsonify(_document())


@bp.get("/docs")
def swagger_ui() -> Response:
    """Swagger UI: try every endpoint; 'Authorize' sends an API key."""
    nonce = secrets.token_urlsafe(16)
    page = render_template_string(SWAGGER_PAGE, title=_document()["info"]["title"], nonce=nonce)
    response = Response(page, mimetype="text/html")
    # Only our own assets and this page's one inline script run; Swagger UI sets inline styles and data: images.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    return response


@bp.after_request
def _no_framing(response: Response) -> Response:
    """The docs are never framed (clickjacking) nor content-sniffed."""
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _document() -> dict[str, Any]:
    app = current_app
    assert isinstance(app, OpenAPI), "the docs blueprint serves the document an OpenAPI app collects"
    return app.api_doc

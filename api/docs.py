"""Public API docs: the generated OpenAPI document and Swagger UI, served offline from bundled assets."""

from __future__ import annotations

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
  <script>
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
def swagger_ui() -> str:
    """Swagger UI: try every endpoint; 'Authorize' sends an API key."""
    return render_template_string(SWAGGER_PAGE, title=_document()["info"]["title"])


def _document() -> dict[str, Any]:
    app = current_app
    assert isinstance(app, OpenAPI), "the docs blueprint serves the document an OpenAPI app collects"
    return app.api_doc

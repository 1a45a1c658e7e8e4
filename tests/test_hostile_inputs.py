"""Hostile inputs, one table: each gets its 4xx in under 2 s, grows the database by less than 1 MB, and, when
it is refused, never reaches the model. The NUL-byte rows run on PostgreSQL too, where NUL cannot be stored.

Rows name the fields (or the cause, for a run that failed while rendering) the error must report.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from api.app import create_app
from api.services import services
from core.settings import Settings
from tests.conftest import postgres_schema
from tests.fakes import FakeModel

SECONDS = 2.0
GROWTH_BYTES = 1024 * 1024
BIG_INPUT = "lorem ipsum dolor sit amet\n" * 4_000  # 108,000 characters: the run stores it, well under 1 MB


@dataclass(frozen=True)
class Hostile:
    """One hostile request and what it must get."""

    name: str
    method: str
    path: str
    body: Any = None  # sent as JSON; a str is sent as is, as application/json
    status: int = 400
    code: str = "validation_error"
    names: tuple[str, ...] = ()  # fields (or `cause`, `field`) the error names
    model_called: bool = False
    answer: str | None = None  # what the fake model answers
    chunked: bool = False
    nul: bool = False  # a NUL-byte row: it runs on PostgreSQL too


def _deep(levels: int) -> str:
    return '{"prompt": "x", "tags": ' + "[" * levels + "]" * levels + "}"


def _steps(prompt: str, **step: Any) -> dict[str, Any]:
    return {"steps": [{"prompt_template": prompt, **step}], "input": "x"}


def _template(name: str, prompt: str, *, field: str = "steps.0.prompt_template", **extra: Any) -> Hostile:
    """A template refused when the workflow is validated, before the run exists."""
    return Hostile(name, "POST", "/api/workflow", {**_steps(prompt), **extra}, names=(field,))


def _rendered(name: str, prompt: str, **extra: Any) -> Hostile:
    """A template that only the bounded render can refuse: the run fails at its first step, no model called."""
    return Hostile(name, "POST", "/api/workflow", {**_steps(prompt), "input": BIG_INPUT, **extra},
                   code="workflow_step_failed", names=("template_limit",))


# The operations of /openapi.json (checked by the last test); ids in paths are filled with IDS.
BODY_OPERATIONS = [("POST", "/api/generate"), ("POST", "/api/experiment"),
                   ("PUT", "/api/experiment/{experiment_id}/weights"), ("POST", "/api/experiment/{experiment_id}/test"),
                   ("POST", "/api/experiment/{experiment_id}/record"), ("POST", "/api/workflow"),
                   ("POST", "/api/workflows"), ("POST", "/api/compare"), ("POST", "/api/benchmarks"),
                   ("POST", "/api/budgets"), ("PATCH", "/api/budgets/{budget_id}"), ("POST", "/v1/chat/completions"),
                   ("POST", "/api/feedback"), ("POST", "/api/keys"), ("POST", "/v1/embeddings"),
                   ("PATCH", "/api/models/{name}"), ("POST", "/api/models/{name}/versions/{version}/promote"),
                   ("POST", "/api/prompts"), ("PUT", "/api/prompts/{name}/labels/{label}"), ("POST", "/api/rollouts"),
                   ("POST", "/api/jobs"), ("POST", "/api/cache/warm")]
PATH_OPERATIONS = [("GET", "/api/workflows/{name}"), ("GET", "/api/workflows/{name}/versions"),
                   ("GET", "/api/workflows/{name}/graph"), ("GET", "/api/workflow/runs/{run_id}"),
                   ("POST", "/api/workflow/runs/{run_id}/resume"), ("GET", "/docs/assets/{filename}"),
                   ("GET", "/api/keys/{key_id}"), ("DELETE", "/api/keys/{key_id}"), ("PATCH", "/api/models/{name}"),
                   ("GET", "/api/models/{name}/versions"), ("POST", "/api/models/{name}/versions/{version}/promote"),
                   ("POST", "/api/models/{name}/rollback"), ("GET", "/api/prompts/{name}"),
                   ("PUT", "/api/prompts/{name}/labels/{label}"), ("GET", "/api/prompts/{name}/metrics")]
QUERY_OPERATIONS = [("/api/requests", "user_id"), ("/api/workflows/{name}", "version"),
                    ("/api/workflows/{name}/graph", "version"), ("/api/workflow/runs", "workflow"),
                    ("/api/comparisons", "model"), ("/api/benchmarks", "model"), ("/api/metrics", "model"),
                    ("/api/metrics/history", "model"), ("/api/costs", "model"), ("/api/alerts", "limit"),
                    ("/api/health/anomalies", "limit"), ("/api/cache", "model"), ("/api/metrics/versions", "model"),
                    ("/api/prompts/{name}/metrics", "since"), ("/api/rollouts", "status")]
IDS = {"experiment_id": "1", "budget_id": "1", "name": "w", "version": "1.0.0", "label": "production"}


def _path_parameter(path: str) -> str:
    return path[path.index("{") + 1:path.index("}")]


CASES = [
    # JSON nested deeper than Python's recursion: refused on every endpoint that takes a body.
    *[Hostile(f"1,000 levels deep: {method} {path}", method, path.format(**IDS), _deep(1000), names=("(body)",))
      for method, path in BODY_OPERATIONS],
    Hostile("100 levels deep names the field", "POST", "/api/generate", _deep(100), names=("tags",)),
    # Text that no provider, log or database takes: lone surrogates, NUL characters, NaN.
    Hostile("lone surrogate in system", "POST", "/api/generate", '{"prompt": "x", "system": "\\ud800"}',
            names=("system",)),
    Hostile("lone surrogate in tags", "POST", "/api/generate", '{"prompt": "x", "tags": ["ok", "\\udc00"]}',
            names=("tags.1",)),
    Hostile("lone surrogate in a comparison's system", "POST", "/api/compare",
            '{"models": ["fake"], "prompt": "x", "system": "a\\udfffb"}', names=("system",)),
    Hostile("lone surrogate in workflow tags", "POST", "/api/workflow",
            '{"steps": [{"prompt": "x"}], "input": "x", "tags": ["\\ud83d"]}', names=("tags.0",)),
    Hostile("NUL in prompt", "POST", "/api/generate", {"prompt": "a\x00b"}, names=("prompt",), nul=True),
    Hostile("NUL in user_id", "POST", "/api/generate", {"prompt": "x", "user_id": "u\x00"}, names=("user_id",),
            nul=True),
    Hostile("NUL in tags", "POST", "/api/generate", {"prompt": "x", "tags": ["\x00"]}, names=("tags.0",), nul=True),
    Hostile("NUL in a message", "POST", "/api/generate", {"messages": [{"role": "user", "content": "\x00"}]},
            names=("messages.0.content",), nul=True),
    Hostile("NUL in a gateway message", "POST", "/v1/chat/completions",
            {"model": "fake", "messages": [{"role": "user", "content": "\x00"}]}, names=("messages.0.content",),
            nul=True),
    Hostile("NUL in a budget name", "POST", "/api/budgets",
            {"name": "b\x00", "scope": "global", "period": "daily", "limit_usd": 1}, names=("name",), nul=True),
    Hostile("NUL in a workflow variable", "POST", "/api/workflow",
            {**_steps("{{ v }}"), "variables": {"v": "\x00"}}, names=("variables.v",), nul=True),
    Hostile("NUL in a JSON key", "POST", "/api/workflow", {**_steps("x"), "variables": {"v\x00": "x"}},
            names=("variables.v\ufffd",), nul=True),
    *[Hostile(f"NUL in path: {method} {path}", method, path.format(**{**IDS, _path_parameter(path): "a%00b"}),
              names=(_path_parameter(path),), nul=True) for method, path in PATH_OPERATIONS],
    *[Hostile(f"NUL in query: {path}?{name}", "GET", f"{path.format(**IDS)}?{name}=%00", names=(name,), nul=True)
      for path, name in QUERY_OPERATIONS],
    Hostile("NUL in query: POST /api/batches?scheduled_at", "POST", "/api/batches?scheduled_at=%00",
            '{"requests": [{"prompt": "x"}]}', names=("scheduled_at",), nul=True),
    Hostile("NaN in variables", "POST", "/api/workflow", '{"steps": [{"prompt": "x"}], "input": "x", '
                                                         '"variables": {"v": NaN}}', names=("variables.v",)),
    # Strict types: a boolean is no number.
    Hostile("max_tokens true", "POST", "/api/generate", {"prompt": "x", "max_tokens": True}, names=("max_tokens",)),
    Hostile("temperature true", "POST", "/api/generate", {"prompt": "x", "temperature": True},
            names=("temperature",)),
    Hostile("workflow max_tokens true", "POST", "/api/workflow", {**_steps("x"), "max_tokens": True},
            names=("max_tokens",)),
    # Bodies past MAX_CONTENT_LENGTH, with or without a Content-Length.
    Hostile("10 MB chunked body", "POST", "/api/generate", {"prompt": "a" * 10_000_000}, status=413,
            code="payload_too_large", chunked=True),
    Hostile("2 MB sized body", "POST", "/api/generate", {"prompt": "a" * 2_000_000}, status=413,
            code="payload_too_large"),
    # Templates, refused when the workflow is validated (constant arguments, refused tags and calls) ...
    _template("center(100000000)", "{{ input|center(100000000) }}"),
    _template("'%0100000000d'|format(1)", "{{ '%0100000000d'|format(1) }}"),
    _template("'%0100000000d' % 1", "{{ '%0100000000d' % 1 }}"),
    _template("indent(100000000)", "{{ input|indent(100000000) }}"),
    _template("batch(100000000)", "{{ input|batch(100000000)|list }}"),
    _template("2 ** 1000", "{{ 2 ** 1000 }}"),
    _template("'ab' * 100000000", "{{ 'ab' * 100000000 }}"),
    _template("str.center", "{{ input.center(100000000) }}"),
    _template("str.format", "{{ '{:>100000000}'.format(input) }}"),
    _template("include", "{% include 'other' %}"),
    _template("import", "{% import 'other' as o %}{{ o.x }}"),
    _template("extends", "{% extends 'base' %}"),
    _template("range (there are no globals)", "{% for i in range(100000000) %}{{ i }}{% endfor %}"),
    _template("unknown filter", "{{ input|no_such_filter }}"),
    Hostile("hostile system prompt", "POST", "/api/workflow",
            {"steps": [{"prompt": "x", "system": "{{ input|center(100000000) }}"}], "input": "x"},
            names=("steps.0.system",)),
    # ... and by the bounded render (arguments only known then): size and time limits.
    _rendered("center(n)", "{{ input|center(n) }}", variables={"n": 100_000_000}),
    _rendered("format width from a variable", "{{ f|format(1) }}", variables={"f": "%0100000000d"}),
    _rendered("list multiplication", "{{ [input] * 100000 }}"),
    _rendered("list of characters multiplied", "{{ (input|list) * 100 }}"),
    _rendered("wordwrap with a long wrapstring", "{{ input|wordwrap(5, wrapstring=input) }}"),
    _rendered("indent with the input", "{{ input|indent(input, first=true) }}"),
    _rendered("join with the input", "{{ input|list|join(input) }}"),
    _rendered("replace with the input", "{{ input|replace(' ', input) }}"),
    _rendered("~ doubling in a recursive macro", "{% macro f(x) %}{{ f(x ~ x) }}{% endmacro %}{{ f(input) }}"),
    _rendered("nested literals", "{% set a = [input, input] %}{% set b = [a, a] %}{% set c = [b, b] %}"
                                 "{% set d = [c, c] %}{% set e = [d, d] %}{{ e }}"),
    _rendered("a loop's output", "{% for w in input %}{{ input }}{% endfor %}"),
    _rendered("three nested loops (time)", "{% for a in input %}{% for b in input %}{% for c in input %}"
                                           "{% endfor %}{% endfor %}{% endfor %}"),
    Hostile("method reached through attr", "POST", "/api/workflow", _steps("{{ (input|attr('center'))(100000000) }}"),
            code="workflow_step_failed", names=("render_error",)),
    Hostile("hostile condition", "POST", "/api/workflow",
            {"steps": [{"prompt": "x", "when": "input|center(n) == ''"}], "input": "x",
             "variables": {"n": 100_000_000}}, code="workflow_step_failed", names=("template_limit",)),
    # Regular expressions: invalid ones are refused before any call; a catastrophic one stops at its time limit.
    Hostile("invalid parser pattern", "POST", "/api/workflow",
            _steps("x", parser={"type": "regex", "pattern": "(?P<a>x"}), names=("steps.0.parser.pattern",)),
    Hostile("invalid scorer pattern", "POST", "/api/compare",
            {"models": ["fake"], "prompt": "x", "scorers": [{"type": "regex", "pattern": "("}]},
            code="invalid_scorer", names=("pattern",)),
    Hostile("(a|aa)+$ as a parser", "POST", "/api/workflow",
            _steps("x", parser={"type": "regex", "pattern": r"(?P<a>(a|aa)+)$"}), code="workflow_step_failed",
            names=("pattern_timeout",), model_called=True, answer="a" * 5000 + "!"),
    # A scorer cannot refuse after the models answered: the comparison stands, the scorer could not decide.
    Hostile("(a|aa)+$ as a scorer", "POST", "/api/compare",
            {"models": ["fake"], "prompt": "x", "scorers": [{"type": "regex", "pattern": r"(a|aa)+$"}]},
            status=200, code="", model_called=True, answer="a" * 5000 + "!"),
]


def _send(client: FlaskClient, case: Hostile) -> Any:
    data = case.body if isinstance(case.body, str) else None if case.body is None else json.dumps(case.body)
    if not case.chunked:
        return client.open(case.path, method=case.method, data=data, content_type="application/json")
    return client.open(case.path, method=case.method, input_stream=io.BytesIO((data or "").encode()),
                       content_type="application/json", headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})


def _named(error: dict[str, Any]) -> set[str]:
    """The fields an error names: ours in `details`, OpenAI's (under /v1) in `param`."""
    details = error.get("details", {})
    return ({f["field"] for f in details.get("fields", [])}
            | {details[key] for key in ("field", "cause") if key in details}
            | ({error["param"]} if error.get("param") else set()))


def _check(case: Hostile, client: FlaskClient, model: FakeModel, database_bytes: Callable[[], int]) -> None:
    model.calls.clear()
    if case.answer is not None:
        model.enqueue(case.answer)
    before = database_bytes()
    started = time.monotonic()
    response = _send(client, case)
    elapsed = time.monotonic() - started
    body = response.get_json()
    assert response.status_code == case.status, body
    if case.code:
        assert body["error"]["code"] == case.code, body
        assert set(case.names) <= _named(body["error"]), body
    assert elapsed < SECONDS
    assert database_bytes() - before < GROWTH_BYTES
    assert bool(model.calls) is case.model_called


def _sqlite_bytes(url: str) -> Callable[[], int]:
    path = Path(url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal")]
    return lambda: sum(f.stat().st_size for f in files if f.exists())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_input(case: Hostile, client: FlaskClient, fake_model: FakeModel, sqlite_url: str) -> None:
    _check(case, client, fake_model, _sqlite_bytes(sqlite_url))


@pytest.fixture(scope="module")
def postgres_app() -> Iterator[tuple[FlaskClient, FakeModel, Callable[[], int]]]:
    """One app on a fresh PostgreSQL schema for every NUL row: a client, its fake model, the schema's size."""
    with postgres_schema() as url:
        settings = Settings.from_env(environ={}, env_file=None,
                                     overrides={"DATABASE_URL": url, "DEFAULT_MODEL": "fake-model"})
        app = create_app(settings, {"TESTING": True})
        model = FakeModel()
        services(app).registry.register_model(model, aliases=("fake",))
        engine = services(app).engine
        size = text("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()")

        def database_bytes() -> int:
            with engine.connect() as conn:
                return int(conn.execute(size).scalar_one())

        yield app.test_client(), model, database_bytes
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("case", [case for case in CASES if case.nul], ids=lambda case: case.name)
def test_nul_bytes_on_postgres(case: Hostile, postgres_app: tuple[FlaskClient, FakeModel, Callable[[], int]]) -> None:
    _check(case, *postgres_app)


def test_the_table_covers_every_operation_with_a_body_path_or_query(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    bodies, paths, queries = set(), set(), set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            parameters = operation.get("parameters", [])
            if "requestBody" in operation:
                bodies.add((method.upper(), path))
            if any(p["in"] == "path" and p["schema"].get("type") == "string" and "enum" not in p["schema"]
                   for p in parameters):  # free text: an enum (an experiment's action) only routes its values
                paths.add((method.upper(), path))
            if any(p["in"] == "query" for p in parameters):
                queries.add(path)
    assert bodies == set(BODY_OPERATIONS)
    assert paths == {(method, path) for method, path in PATH_OPERATIONS if path.startswith("/api/")}
    assert queries == {path for path, _ in QUERY_OPERATIONS} | {"/api/batches"}  # the one POST with a query

"""Schemathesis fuzzes every operation of /openapi.json through the WSGI app: no 5xx, every answer as documented.

Valid (positive) and invalid (negative) inputs are generated for each operation, deterministically and few
per operation, so the whole run stays well under a minute on two cores. Invalid inputs must get a 4xx.
`positive_data_acceptance` is left out: rules across fields (exactly one of `template`/`steps`/`workflow`,
unique variant names, `until` after `since`) are beyond JSON Schema, so schema-valid bodies may get a 400.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from api.services import services

API_KEY = "fuzz-test-key"
EXAMPLES_PER_MODE = 8
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_MODE, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def api_schema(settings, fake_model):
    """The app with an API key configured, so the fuzzer also checks that secured operations refuse calls without."""
    keyed = settings.model_copy(update={"api_keys": SecretStr(API_KEY)})
    app = create_app(keyed, {"TESTING": True})
    services(app).registry.register_model(fake_model, aliases=("fake",))
    auth = {"openapi": {"apiKeyHeader": {"api_key": API_KEY}, "bearerAuth": {"bearer": API_KEY}}}
    return schemathesis.openapi.from_wsgi("/openapi.json", app, config=SchemathesisConfig.from_dict({"auth": auth}))


def _fuzz(operation, mode: GenerationMode, statuses: Counter) -> None:
    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(mode))
    def run(case) -> None:
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        statuses[response.status_code // 100 * 100] += 1

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid: the operation takes no parameters and no body
        assert mode is GenerationMode.NEGATIVE and not operation.body and not operation.query, operation.label


def test_every_operation_answers_as_documented(api_schema):
    failures, statuses = [], Counter()
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, statuses)
            except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures, report them all
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert statuses[200] >= 50 and statuses[400] >= 50, statuses  # the key was accepted; invalid input was refused

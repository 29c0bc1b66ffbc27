"""Schemathesis drives every operation of /openapi.json with generated requests.

Examples are few, so the suite stays fast; the checks are schemathesis's own:
no 5xx, documented statuses, content types and headers, bodies that match
their schemas, and schema-violating requests refused.

Each operation is run from a plain test rather than `schemathesis.pytest.from_fixture`,
which reads `request.node._nodeid`, gone from pytest 9.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode

from double11.adapters.memory import MemoryStore
from double11.api.fastpath import EventsFastPath
from double11.domain.customer import Customer

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Operations with no parameters and no body have no schema-violating request to make.
OPERATIONS = {
    ("POST", "/v1/events"): (POSITIVE, NEGATIVE),
    ("PUT", "/v1/customers/{id}"): (POSITIVE, NEGATIVE),
    ("GET", "/v1/customers/{id}/wallet"): (POSITIVE, NEGATIVE),
    ("GET", "/v1/campaign"): (POSITIVE, NEGATIVE),
    ("GET", "/healthz"): (POSITIVE,),
    ("GET", "/metrics"): (POSITIVE,),
}
# A request can fit the schema and still be refused with 422 for what a schema cannot say:
# an event's type must be the campaign's and its customer known, its instant not ahead of
# the engine's clock; a profile's body id must equal the path's.
SEMANTIC = {("POST", "/v1/events"), ("PUT", "/v1/customers/{id}")}


@pytest.fixture
def api_schema(app: EventsFastPath, store: MemoryStore) -> schemathesis.BaseSchema:
    store.customers["c-1"] = Customer(id="c-1", age=30, is_new=True)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_the_document_lists_exactly_the_operations_tested_here(
    api_schema: schemathesis.BaseSchema,
) -> None:
    paths = api_schema.raw_schema["paths"]
    found = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [
        pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
        for (method, path), modes in OPERATIONS.items()
        for mode in modes
    ],
)
def test_generated_requests_get_answers_the_document_allows(
    api_schema: schemathesis.BaseSchema,
    keys: dict[str, str],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    # Both declared schemes, so schemathesis knows the credentials are given, not generated,
    # and probes each route without them and with wrong ones.
    admin = {"Authorization": f"Bearer {keys['admin']}", "X-API-Key": keys["admin"]}

    excluded = [positive_data_acceptance] if (method, path) in SEMANTIC else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples on every run, so CI is repeatable
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def answers(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=admin, excluded_checks=excluded)

    answers()

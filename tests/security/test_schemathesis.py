"""Schemathesis against `/openapi.json`, through the WSGI app: no 5xx, every response matching its schema.

Requests are generated from the document itself (valid and invalid bodies, odd path parameters), with
the right token, a wrong one and none. Schemathesis's own pytest plugin is not used: its lazy-fixture
mode does not run on the pytest this project uses, so each operation's strategy is driven directly.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from tests.conftest import TEST_ENV

# Kept small so the suite stays fast; every operation still gets examples with each kind of token.
EXAMPLES = 20
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
TOKENS = {
    "right": {"Authorization": f"Bearer {TEST_ENV['OPTOUT_API_TOKEN']}"},
    "wrong": {"Authorization": "Bearer not-the-token"},
    "none": {},
}


def test_every_operation_answers_within_its_schema(app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 3, "the document lists the API"
    seen: dict[str, set[int]] = {}
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(), token=st.sampled_from(sorted(TOKENS)))
        def run(case: Any, token: str) -> None:
            response = case.call_and_validate(headers=TOKENS[token], checks=CHECKS)
            seen.setdefault(case.operation.label, set()).add(response.status_code)

        run()
    # Unauthenticated calls were made and refused, authenticated ones got through to the handlers.
    statuses = set().union(*seen.values())
    assert 401 in statuses and statuses & {200, 202}

"""A gateway with every SMS provider configured, credentials taken from the adapter contract cases.

The contract cases (`tests/adapters/cases/`) sign requests with their own fake credentials; this gateway is
configured with exactly those, so a case's request can be posted through the Flask client unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.adapters.contract import ProviderCase, all_cases
from tests.conftest import TEST_ENV, base_config

CASES = all_cases()
#: The opt-out scope every provider's number belongs to here.
SCOPE = "acme"
#: One number of ours per provider, so a reply's sender shows which provider it goes out through.
OURS = {case.name: f"+141555502{i:02d}" for i, case in enumerate(CASES)}
#: The number the contract cases' delivery receipts say their message was sent from.
RECEIPT_SENDER = "+14155550199"


def provider_config(db_url: str) -> dict[str, Any]:
    """The base test configuration with every contract case's provider and one sender number each."""
    config = base_config(db_url)
    config["default_provider"] = "console"
    config["providers"] = {"console": {}, **{case.name: dict(case.settings) for case in CASES}}
    config["senders"] = [
        {"address": OURS[case.name], "provider": case.name, "scope": SCOPE} for case in CASES
    ] + [{"address": RECEIPT_SENDER, "provider": "console", "scope": SCOPE}]
    return config


@pytest.fixture
def config(db_url: str) -> dict[str, Any]:
    """Every SMS provider configured with the contract cases' settings."""
    return provider_config(db_url)


@pytest.fixture
def env() -> dict[str, str]:
    """The API token and secret key of the base tests plus every contract case's fake credentials."""
    merged = dict(TEST_ENV)
    for case in CASES:
        merged.update(case.env)
    return merged


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request: pytest.FixtureRequest) -> ProviderCase:
    """One provider's contract case."""
    return request.param  # type: ignore[no-any-return]

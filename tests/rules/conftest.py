from __future__ import annotations

import pytest

from rules import RuleSet
from tests.rules.helpers import default_ruleset


@pytest.fixture(scope="session")
def defaults() -> RuleSet:
    return default_ruleset()

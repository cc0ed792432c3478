"""Fixtures for the fault tests: a provider double and a stack of gateway processes on the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import ProviderDouble, Stack


@pytest.fixture
def double() -> Iterator[ProviderDouble]:
    """A local Twilio Messages API that records and deduplicates sends."""
    provider = ProviderDouble()
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
def stack(db_url: str, tmp_path: Path, double: ProviderDouble) -> Iterator[Stack]:
    """Server and worker processes on the test database (started by each test), sending to `double`."""
    gateway = Stack(db_url, tmp_path, double)
    yield gateway
    gateway.stop()

"""Fixtures of the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import PG_AVAILABLE

from .databases import BACKENDS, NewDatabase, databases


@pytest.fixture(params=BACKENDS)
def new_database(request: pytest.FixtureRequest) -> Iterator[NewDatabase]:
    """Fresh databases on SQLite, then on the real PostgreSQL (skipped when it is not reachable)."""
    if request.param == "postgres" and not PG_AVAILABLE:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 (database test) is not reachable")
    with databases(request.param) as new:
        yield new

"""The migrations build exactly the tables the models describe (on SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from syndicator.storage.engine import open_database
from syndicator.storage.schema import Base


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []

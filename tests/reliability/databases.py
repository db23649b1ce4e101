"""The database a crash or concurrency test runs on: a SQLite file or a fresh schema of the real PostgreSQL.

The tests are written once against ``Database``: where it lives (``url``), whether it is consistent after a
kill (``problems``), what it holds (``state``, compared row by row with an uninterrupted run) and how much of
the work is committed (``committed``). Every PostgreSQL schema made here is dropped when the test ends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import PG_ADMIN_URL
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .state import QUERIES

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"

# Each query lists what breaks one rule; an empty result is a consistent database. They hold for an archive
# source whose files all parse (what the crash and concurrency tests generate).
CONSISTENCY = {
    "article without its story":
        "SELECT a.id FROM articles a LEFT JOIN stories s ON s.id = a.story_id WHERE s.id IS NULL",
    "story without any article":
        "SELECT s.id FROM stories s WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.story_id = s.id)",
    "member_count differs from the live members":
        "SELECT s.id, s.member_count, (SELECT count(*) FROM articles a WHERE a.story_id = s.id "
        "AND a.withdrawn_at IS NULL) AS live FROM stories s WHERE s.member_count <> (SELECT count(*) "
        "FROM articles a WHERE a.story_id = s.id AND a.withdrawn_at IS NULL)",
    "withdrawn flag differs from having no live member":
        "SELECT s.id FROM stories s WHERE (CASE WHEN s.withdrawn THEN 1 ELSE 0 END) <> "
        "(CASE WHEN s.member_count = 0 THEN 1 ELSE 0 END)",
    "canonical article is not a live member":
        "SELECT s.id FROM stories s WHERE s.member_count > 0 AND NOT EXISTS (SELECT 1 FROM articles a "
        "WHERE a.id = s.canonical_article_id AND a.story_id = s.id AND a.withdrawn_at IS NULL)",
    "duplicate articles for one source key":
        "SELECT source_id, key, count(*) FROM articles GROUP BY source_id, key HAVING count(*) > 1",
    "duplicate source items for one key":
        "SELECT source_id, key, count(*) FROM source_items GROUP BY source_id, key HAVING count(*) > 1",
    "source item points at a missing, foreign or withdrawn article":
        "SELECT i.key, i.article_id FROM source_items i LEFT JOIN articles a ON a.id = i.article_id "
        "WHERE i.article_id IS NOT NULL AND (a.id IS NULL OR a.source_id <> i.source_id OR a.key <> i.key "
        "OR a.withdrawn_at IS NOT NULL)",
    "live article without its source item":
        "SELECT a.id, a.key FROM articles a LEFT JOIN source_items i ON i.source_id = a.source_id "
        "AND i.key = a.key WHERE a.withdrawn_at IS NULL AND (i.id IS NULL OR i.article_id IS NULL "
        "OR i.article_id <> a.id)",
    "story tag no live member carries":
        "SELECT story_id, tag_id FROM story_tags EXCEPT SELECT a.story_id, t.tag_id FROM article_tags t "
        "JOIN articles a ON a.id = t.article_id WHERE a.withdrawn_at IS NULL",
    "live member's tag missing from its story":
        "SELECT a.story_id, t.tag_id FROM article_tags t JOIN articles a ON a.id = t.article_id "
        "WHERE a.withdrawn_at IS NULL EXCEPT SELECT story_id, tag_id FROM story_tags",
    "article version count differs from its version number":
        "SELECT a.id, a.version, (SELECT count(*) FROM article_versions v WHERE v.article_id = a.id) FROM "
        "articles a WHERE a.version <> 1 + (SELECT count(*) FROM article_versions v WHERE v.article_id = a.id)",
    "near-duplicate index rows of a withdrawn or missing article":
        "SELECT DISTINCT b.article_id FROM article_bands b LEFT JOIN articles a ON a.id = b.article_id "
        "WHERE a.id IS NULL OR a.withdrawn_at IS NOT NULL",
}


class Database:
    """One database of a test run. ``kind`` is ``sqlite`` or ``postgres``."""

    def __init__(self, kind: str, url: str, path: Path | None = None) -> None:
        self.kind, self.url, self.path = kind, url, path
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.url, poolclass=NullPool)
        return self._engine

    def has_schema(self) -> bool:
        """Whether a run got as far as creating the tables."""
        if self.path is not None and not self.path.exists():
            return False
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM stories"))
        except DBAPIError:
            return False
        return True

    def problems(self) -> list[str]:
        """Everything inconsistent: SQLite's own integrity check, then the rules in ``CONSISTENCY``."""
        if not self.has_schema():
            return []
        found: list[str] = []
        with self.engine.connect() as conn:
            if self.kind == "sqlite":
                for (line,) in conn.execute(text("PRAGMA integrity_check")):
                    if line != "ok":
                        found.append(f"integrity_check: {line}")
                found += [f"foreign key: {tuple(r)}" for r in conn.execute(text("PRAGMA foreign_key_check"))]
            for rule, query in CONSISTENCY.items():
                rows = conn.execute(text(query)).fetchall()
                if rows:
                    found.append(f"{rule}: {len(rows)} rows, e.g. {tuple(rows[0])}")
        return found

    def state(self) -> dict[str, list[tuple[object, ...]]]:
        """The rows that must equal an uninterrupted run's (time-of-run columns left out; see ``QUERIES``)."""
        with self.engine.connect() as conn:
            return {name: [tuple(r) for r in conn.execute(text(q))] for name, q in QUERIES.items()}

    def committed(self) -> int:
        """Source items committed so far (0 before the tables exist)."""
        if not self.has_schema():
            return 0
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM source_items")).scalar_one())

    def stored_outputs(self) -> dict[str, str] | None:
        """path → ETag of the outputs kept in the database (PostgreSQL), None where outputs are files only."""
        if self.kind != "postgres":
            return None
        with self.engine.connect() as conn:
            return {p: e for p, e in conn.execute(text("SELECT path, etag FROM outputs"))}

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


NewDatabase = Callable[[Path], Database]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def databases(kind: str) -> Iterator[NewDatabase]:
    """A maker of fresh databases of one kind (a SQLite file in the folder given, or a new PostgreSQL schema)."""
    made: list[Database] = []
    schemas: list[str] = []

    def new(folder: Path) -> Database:
        if kind == "sqlite":
            path = folder / "var" / "syndicator.db"
            db = Database(kind, f"sqlite:///{path}", path)
        else:
            import psycopg

            schema = f"t_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            schemas.append(schema)
            db = Database(kind, f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}")
        made.append(db)
        return db

    try:
        yield new
    finally:
        for db in made:
            db.dispose()
        if schemas:
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

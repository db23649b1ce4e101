"""The migrations build exactly the tables the models describe, and revision 0007 re-indexes near-duplicates (on
SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import REPO, write_config
from sqlalchemy import Connection, Engine, text
from sqlalchemy import inspect as sa_inspect

from syndicator import dedup
from syndicator.config import Settings, load
from syndicator.storage import engine as engine_mod
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.storage.schema import Base
from syndicator.sync import sync

STORIES = REPO / "tests" / "data" / "stories"


@pytest.mark.parametrize("alembic_only", [False, True], ids=["as-opened", "migrated"])
def test_migrated_schema_matches_the_models(db_url: str, alembic_only: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if alembic_only:  # a new SQLite database is otherwise made from the models (see below)
        monkeypatch.setattr(engine_mod, "_create_new_sqlite", lambda engine, head: False)
    engine = open_database(db_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def _sqlite_schema(engine: Engine) -> dict[str, object]:
    """Every table's columns, indexes (with their columns and uniqueness) and foreign keys, as SQLite lists
    them; the column order and the text of ``CREATE TABLE`` may differ."""
    out: dict[str, object] = {}
    with engine.connect() as conn:
        tables = [r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for t in tables:
            columns = sorted(tuple(r)[1:] for r in conn.exec_driver_sql(f"PRAGMA table_info('{t}')"))
            indexes = []
            for _, name, unique, origin, partial in conn.exec_driver_sql(f"PRAGMA index_list('{t}')"):
                cols = [r[2] for r in conn.exec_driver_sql(f"PRAGMA index_info('{name}')")]
                # SQLite names the indexes of a PRIMARY KEY/UNIQUE constraint itself (sqlite_autoindex_t_N)
                indexes.append((None if name.startswith("sqlite_autoindex") else name, unique, origin, partial, cols))
            keys = sorted(tuple(r)[2:] for r in conn.exec_driver_sql(f"PRAGMA foreign_key_list('{t}')"))
            out[t] = (columns, sorted(indexes, key=repr), keys)
        out["revision"] = [r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    return out


def test_a_new_sqlite_database_is_what_the_migrations_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new SQLite database is made from the models at once (no Alembic): the same schema as migrating."""
    created = open_database(f"sqlite:///{tmp_path / 'created.db'}")
    monkeypatch.setattr(engine_mod, "_create_new_sqlite", lambda engine, head: False)
    migrated = open_database(f"sqlite:///{tmp_path / 'migrated.db'}")
    assert _sqlite_schema(created) == _sqlite_schema(migrated)
    assert len(_sqlite_schema(created)) > 10  # every table, not an empty comparison
    assert _sqlite_schema(created)["revision"] == [engine_mod.head_revision()]


def test_only_an_empty_sqlite_file_is_created_from_the_models(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A database that has tables but no revision goes through Alembic (which says what it does)."""
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
    with caplog.at_level(logging.INFO, logger="syndicator.storage.engine"):
        open_database(f"sqlite:///{path}")
    assert "migrating database from empty" in caplog.text
    assert "created database" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="syndicator.storage.engine"):
        open_database(f"sqlite:///{tmp_path / 'new.db'}")
    assert "created database at revision" in caplog.text


def _synced_as_left_by_0006(tmp_path: Path, archive: Path, db_url: str) -> tuple[Settings, list[tuple[object, ...]]]:
    """Sync ``archive`` into a new database, then make it what revision 0006 left: other band keys (none that a
    new article shares), the key index in place, revision 0006. Returns the settings and those band rows."""
    settings = load(write_config(tmp_path, archive, db_url=db_url))
    repo = Repository(open_database(db_url))
    sync(settings, repo)
    with repo.engine.begin() as conn:
        conn.execute(text("UPDATE article_bands SET band_key = band_key / 2"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
        rows = sorted(map(tuple, conn.execute(text("SELECT * FROM article_bands"))))
    repo.engine.dispose()
    return settings, rows


def _band_index_names(conn: Connection) -> set[str | None]:
    return {ix["name"] for ix in sa_inspect(conn).get_indexes("article_bands")}


def test_an_upgrade_re_indexes_near_duplicates_with_the_new_fingerprint(
    tmp_path: Path, archive: Path, db_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """A database indexed by an earlier version (other band keys, revision 0006) is re-indexed once by revision
    0007: every indexed article gets the keys new articles are looked up with, and a re-post synced after the
    upgrade joins the stored story."""
    settings, _ = _synced_as_left_by_0006(tmp_path, archive, db_url)

    with caplog.at_level(logging.INFO, logger="syndicator.storage"):
        repo = Repository(open_database(db_url))
    assert "re-indexing 1 articles for near-duplicate detection" in caplog.text
    with repo.engine.connect() as conn:
        (stored,) = conn.execute(text("SELECT content_text, title FROM articles")).all()
        keys = [r[0] for r in conn.execute(text("SELECT band_key FROM article_bands ORDER BY band_no"))]
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        index_names = _band_index_names(conn)
    assert keys == list(dedup.fingerprint(stored.content_text, stored.title).bands)
    assert revision == engine_mod.head_revision() and "ix_article_bands_key" in index_names

    shutil.copy(STORIES / "repost_fenghuang.md", archive / "repost.md")
    report, _ = sync(settings, repo)
    assert (report.total("new"), report.total("duplicates")) == (0, 1)


def test_a_re_index_that_fails_halfway_loses_nothing(tmp_path: Path, archive: Path, db_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Revision 0007 runs in one transaction: failing halfway (a crash, a full disk) leaves the old rows and
    revision 0006, and the next start re-indexes from the beginning."""
    shutil.copy(STORIES / "repost_fenghuang.md", archive / "repost.md")
    (archive / "other.md").write_text("---\ntitle: 另一条新闻的标题\ndate: 2019-02-25 06:24\n---\n"
                                      + "完全不同的一篇报道，讲的是另外一件事情。" * 20 + "\n", encoding="utf-8")
    _, before = _synced_as_left_by_0006(tmp_path, archive, db_url)
    assert len({row[0] for row in before}) == 3

    real = dedup.fingerprint
    calls = []

    def failing(text_: str, title: str = "") -> dedup.Fingerprint:
        calls.append(title)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(text_, title)

    monkeypatch.setattr(dedup, "fingerprint", failing)
    with pytest.raises(OSError):
        open_database(db_url)
    engine = engine_mod.make_engine(db_url)
    with engine.connect() as conn:
        assert sorted(map(tuple, conn.execute(text("SELECT * FROM article_bands")))) == before
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"
        index_names = _band_index_names(conn)
    engine.dispose()
    assert "ix_article_bands_key" in index_names

    monkeypatch.setattr(dedup, "fingerprint", real)
    engine = open_database(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT a.content_text, a.title, b.band_no, b.band_key FROM article_bands b "
                                 "JOIN articles a ON a.id = b.article_id")).all()
    assert len(rows) == len(before)
    assert all(real(t, title).bands[no] == key for t, title, no, key in rows)

"""Storing a batch of new articles together decides exactly what storing them one by one decides.

``Repository._store_new`` looks candidates up for a whole batch at once and matches articles of the same
batch in memory; a batch size of 1 takes the database for every match instead. Both must give the same
stories, the same canonical members, the same index rows, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REPO, write_config
from sqlalchemy import Engine, text

from syndicator import clock, sync
from syndicator.config import load
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository

sys.path.insert(0, str(REPO))  # bench/ is a folder of the repository, not part of the package

from bench.generate import generate

POSTS = 200  # the generator re-posts ~10 % of the stories, some within a batch, some across batches

QUERIES = {
    "articles": "SELECT id, story_id, version, content_hash, canonical_url FROM articles ORDER BY id",
    "stories": "SELECT id, canonical_article_id, member_count, withdrawn FROM stories ORDER BY id",
    "story_tags": "SELECT story_id, tag_id FROM story_tags ORDER BY story_id, tag_id",
    "bands": "SELECT article_id, band_no, band_key FROM article_bands ORDER BY article_id, band_no",
    "tags": "SELECT name, slug FROM tags ORDER BY name",
    "items": "SELECT key, size, raw_hash, article_id, error FROM source_items ORDER BY key",
}


@pytest.fixture(scope="module")
def posts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("archive"), POSTS, seed=11)


def stored(tmp: Path, posts: Path, db_url: str, batch: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple]]:  # type: ignore[type-arg]
    monkeypatch.setattr(sync, "BATCH", batch)
    settings = load(write_config(tmp, posts, db_url=db_url))
    engine: Engine = open_database(settings.database.url)
    repo = Repository(engine)
    clock.set_now(lambda: datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
    try:
        report, _ = sync.sync(settings, repo, render=False)
    finally:
        clock.set_now(None)
    assert report.total("new") + report.total("duplicates") + report.total("skipped") == POSTS
    assert report.total("duplicates") > 10
    with engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(text(q))] for name, q in QUERIES.items()}


def test_one_batch_decides_as_one_by_one(tmp_path: Path, posts: Path, db_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "batch").mkdir()
    (tmp_path / "mixed").mkdir()
    one_by_one = stored(tmp_path / "one", posts, f"sqlite:///{tmp_path / 'one' / 'db.sqlite'}", 1, monkeypatch)
    together = stored(tmp_path / "batch", posts, db_url, 500, monkeypatch)
    for name in QUERIES:
        assert together[name] == one_by_one[name], name
    # batches of 37: matches across batches (database) and within a batch (memory) in one run
    mixed = stored(tmp_path / "mixed", posts, f"sqlite:///{tmp_path / 'mixed' / 'db.sqlite'}", 37, monkeypatch)
    for name in QUERIES:
        assert mixed[name] == one_by_one[name], name


def test_the_first_batch_is_stored_early(tmp_path: Path, posts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync stores its first ``FIRST_BATCH`` files at once (the workers go on meanwhile), then batches of
    ``BATCH``; a smaller ``BATCH`` is used from the start."""
    sizes: list[int] = []
    real = Repository.save_batch

    def counting(self: Repository, source: str, changes, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(changes))
        return real(self, source, changes, *args, **kwargs)

    monkeypatch.setattr(Repository, "save_batch", counting)
    monkeypatch.setattr(sync, "BATCH", 60)
    settings = load(write_config(tmp_path, posts, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    assert sync.FIRST_BATCH < POSTS
    sync.sync(settings, Repository(open_database(settings.database.url)), render=False)
    assert sizes == [min(60, sync.FIRST_BATCH), *[60] * ((POSTS - min(60, sync.FIRST_BATCH)) // 60), 20], sizes
    sizes.clear()
    monkeypatch.setattr(sync, "BATCH", 500)
    (tmp_path / "big").mkdir()
    settings = load(write_config(tmp_path / "big", posts, db_url=f"sqlite:///{tmp_path / 'big.sqlite'}"))
    sync.sync(settings, Repository(open_database(settings.database.url)), render=False)
    assert sizes == [sync.FIRST_BATCH, POSTS - sync.FIRST_BATCH], sizes

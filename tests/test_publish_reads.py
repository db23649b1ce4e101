"""An incremental sync reads only the changed tags' entries; a full render reads them in chunks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import REPO, write_config

from syndicator.storage.repo import Repository

sys.path.insert(0, str(REPO))
from test_publish import archive_of, run  # the same CLI runner and archive

from bench.generate import Generator


def test_incremental_sync_loads_only_changed_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    posts = list(Generator(5, tags=30).posts(40))
    archive = archive_of(tmp_path, posts[:39])
    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    run(config, "sync")
    asked: list[str] = []
    real = Repository.feed_entries_many

    def spy(self: Repository, slugs: list[str], limit: int, base_url: str) -> object:
        asked.extend(slugs)
        return real(self, slugs, limit, base_url)

    monkeypatch.setattr(Repository, "feed_entries_many", spy)
    all_tags = {p.stem for p in (tmp_path / "feeds" / "tags").glob("*.atom")}
    (archive / posts[39].name).write_bytes(posts[39].data)
    run(config, "sync")
    now_tags = {p.stem for p in (tmp_path / "feeds" / "tags").glob("*.atom")}
    assert asked and set(asked) < now_tags  # some tags, never all of them
    assert len(asked) <= len(posts[39].tags) + 3  # its tags (and its channel's), nothing else
    asked.clear()
    (tmp_path / "feeds").rename(tmp_path / "feeds-before")
    run(config, "render")
    assert set(asked) == now_tags and len(asked) == len(now_tags) >= len(all_tags)

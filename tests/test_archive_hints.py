"""A scan of only the paths a watcher saw change stores what a full scan stores, and reads only those rows."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config
from service.helpers import write_post

from syndicator import clock
from syndicator.config import load
from syndicator.sources import archive
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen() -> Any:
    clock.set_now(lambda: T0)
    yield
    clock.set_now(None)


def _setup(tmp_path: Path, posts: Path, name: str) -> tuple[Any, Repository]:
    folder = tmp_path / name
    folder.mkdir()
    cfg = write_config(folder, posts, db_url=f"sqlite:///{folder / 'db.sqlite'}")
    settings = load(cfg)
    return settings, Repository(open_database(settings.database.url))


def _rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {
            "files": conn.execute("SELECT key, size, mtime_ns, raw_hash, error, article_id IS NULL FROM source_items "
                                  "ORDER BY key").fetchall(),
            "articles": conn.execute("SELECT key, title, content_hash, version, withdrawn_at IS NULL, published, "
                                     "updated FROM articles ORDER BY key").fetchall(),
        }


def test_hinted_scan_stores_the_same_rows_as_a_full_scan(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    (posts / "sub").mkdir(parents=True)
    for n in range(1, 6):
        write_post(posts, n)
    write_post(posts / "sub", 6)
    hinted_settings, hinted = _setup(tmp_path, posts, "hinted")
    full_settings, full = _setup(tmp_path, posts, "full")
    for settings, repo in ((hinted_settings, hinted), (full_settings, full)):
        sync(settings, repo, render=False)
    # new, edited, deleted, touched with the same bytes, a bad file, a new file in a subfolder
    write_post(posts, 7)
    (posts / "00002.md").write_text((posts / "00002.md").read_text(encoding="utf-8").replace("title: ", "title: 改"),
                                    encoding="utf-8")
    (posts / "00003.md").unlink()
    os.utime(posts / "00004.md", ns=(1, 1_700_000_000_000_000_000))
    (posts / "bad.md").write_bytes(b"")
    write_post(posts / "sub", 8)
    # paths the walk does not list: another suffix, a file in a symlinked folder, a name that is gone
    (posts / "image.png").write_bytes(b"\x89PNG")
    (posts / "linked").symlink_to(posts / "sub", target_is_directory=True)
    hints = {"00007.md", "00002.md", "00003.md", "00004.md", "bad.md", f"sub{os.sep}00008.md", "image.png",
             f"linked{os.sep}00006.md", "never-there.md", "00005.md"}
    report, changes = sync(hinted_settings, hinted, render=False, only={"seed-archive": hints})
    (sr,) = report.sources
    assert (sr.new, sr.updated, sr.withdrawn, sr.skipped) == (2, 1, 1, 1)
    assert sr.errors and sr.errors[0].startswith("bad.md: ")
    assert changes
    full_report, _ = sync(full_settings, full, render=False)
    (fr,) = full_report.sources
    assert (fr.new, fr.updated, fr.withdrawn, fr.skipped) == (2, 1, 1, 1)
    assert _rows(tmp_path / "hinted" / "db.sqlite") == _rows(tmp_path / "full" / "db.sqlite")
    # and a full scan afterwards finds nothing the hinted one missed
    again, _ = sync(hinted_settings, hinted, render=False)
    (ar,) = again.sources
    assert (ar.new, ar.updated, ar.withdrawn) == (0, 0, 0)
    assert ar.unchanged == 8 and ar.skipped == 0  # the bad file is remembered: not read again until it changes


def test_hinted_scan_reads_only_the_hinted_file_states(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    for n in range(1, 4):
        write_post(posts, n)
    settings, repo = _setup(tmp_path, posts, "db")
    sync(settings, repo, render=False)
    assert set(repo.file_states("seed-archive")) == {"00001.md", "00002.md", "00003.md"}
    assert set(repo.file_states("seed-archive", keys={"00002.md", "gone.md"})) == {"00002.md"}
    assert repo.file_states("seed-archive", keys=()) == {}
    # the scan looks at the hinted path only: a change elsewhere waits for the next full scan
    write_post(posts, 4)
    (posts / "00001.md").unlink()
    scan, files = archive.scan("seed-archive", posts, "Asia/Shanghai", repo.file_states("seed-archive", keys={"00002.md"}),
                               only={"00002.md"})
    assert list(files) == [] and scan.unchanged == 1 and scan.deleted == []


def test_post_path_maps_event_paths_to_the_walks_relative_paths(tmp_path: Path) -> None:
    root = str(tmp_path / "posts")
    assert archive.post_path(root, os.path.join(root, "a.md")) == "a.md"
    assert archive.post_path(root, os.path.join(root, "x", "全角 名.MD")) == os.path.join("x", "全角 名.MD")
    assert archive.post_path(root + os.sep, os.path.join(root, "a.txt")) == "a.txt"
    for other in ("a.png", ".hidden.md", ".00001.tmp"):
        assert archive.post_path(root, os.path.join(root, other)) is None
    assert archive.post_path(root, str(tmp_path / "elsewhere.md")) is None
    assert archive.post_path(root, root + "-other" + os.sep + "a.md") is None

"""Incremental publishing writes exactly what a full render writes, touching only the files that changed."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

from click.testing import CliRunner
from conftest import REPO, write_config

from syndicator.cli import main

sys.path.insert(0, str(REPO))  # the benchmark's archive generator: seed-shaped posts with many tags
from bench.generate import Generator, Post


def run(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), "-q", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def archive_of(tmp_path: Path, posts: Iterable[Post]) -> Path:
    """An archive folder holding ``posts`` (generated, seed-shaped)."""
    archive = tmp_path / "posts"
    archive.mkdir(exist_ok=True)
    for post in posts:
        (archive / post.name).write_bytes(post.data)
    return archive


def contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_incremental_sync_equals_full_render(tmp_path: Path) -> None:
    posts = list(Generator(5, tags=12).posts(60))
    archive = archive_of(tmp_path, posts[:50])
    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    feeds = tmp_path / "feeds"
    run(config, "sync")
    # new posts, an edited one and a deleted one: each sync renders only the tags it touched
    archive_of(tmp_path, posts[50:])
    run(config, "sync")
    edited = archive / posts[3].name
    edited.write_bytes(edited.read_bytes().replace(b"title: ", "title: 改".encode(), 1))
    (archive / posts[7].name).unlink()
    before = {p: (feeds / p).stat().st_mtime_ns for p in contents(feeds)}
    out = run(config, "sync")
    assert "updated=1" in out and "withdrawn=1" in out
    incremental = contents(feeds)
    rewritten = {p for p in incremental if p in before and (feeds / p).stat().st_mtime_ns != before[p]}
    assert "all.atom" in rewritten and len(rewritten) < len(incremental) / 2  # not everything
    # a full render from the database into an empty folder gives the same bytes, file for file
    (tmp_path / "feeds").rename(tmp_path / "feeds-incremental")
    run(config, "render")
    assert contents(feeds) == incremental


def test_a_tag_that_loses_its_last_story_loses_its_files(tmp_path: Path) -> None:
    """An incremental sync lists the tags folder only when a touched tag has no stories left; then that tag's
    feeds and page go, and the folder equals a full render."""
    posts = list(Generator(7, tags=6).posts(12))
    archive = archive_of(tmp_path, posts)
    lone = archive / posts[0].name  # its own tag, on no other post
    lone.write_bytes(re.sub(rb"(?m)^tags:.*$", "tags: [孤零零的标签]".encode(), posts[0].data, count=1))
    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    feeds = tmp_path / "feeds"
    run(config, "sync")
    alone = {p for p in contents(feeds) if p.startswith("tags/gu-ling-ling")}
    assert alone == {"tags/gu-ling-ling-de-biao-qian.atom", "tags/gu-ling-ling-de-biao-qian.rss",
                     "tags/gu-ling-ling-de-biao-qian.html"}, alone
    edited = archive / posts[1].name  # an edit that keeps every tag's stories: nothing is removed
    edited.write_bytes(edited.read_bytes().replace(b"title: ", "title: 改".encode(), 1))
    run(config, "sync")
    assert alone <= set(contents(feeds))
    lone.unlink()
    assert "withdrawn=1" in run(config, "sync")
    incremental = contents(feeds)
    assert not alone & set(incremental)
    feeds.rename(tmp_path / "feeds-incremental")
    run(config, "render")
    assert contents(feeds) == incremental

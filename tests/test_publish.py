"""Incremental publishing writes exactly what a full render writes, touching only the files that changed."""

from __future__ import annotations

import gc
import re
import sys
import time
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


def test_the_article_pages_of_a_full_render_are_written_by_a_forked_copy(tmp_path: Path, monkeypatch) -> None:
    """A single-threaded command renders the story pages in a forked copy: the same files as in order."""
    from syndicator import forked

    assert forked.available(), "an earlier test left a thread running"
    started = []
    real_start = forked.start
    monkeypatch.setattr(forked, "start", lambda work, what: started.append(what) or real_start(work, what))
    archive = archive_of(tmp_path, Generator(11, tags=8).posts(40))
    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    feeds = tmp_path / "feeds"
    stories = int(re.search(r"new=(\d+)", run(config, "sync")).group(1))  # type: ignore[union-attr]
    assert started == ["rendering the article pages"]
    forked_copy = contents(feeds)
    assert sum(p.startswith("articles/") for p in forked_copy) == stories > 30
    feeds.rename(tmp_path / "feeds-forked")
    monkeypatch.setattr(forked, "available", lambda: False)  # as in the service: everything in order
    run(config, "render")
    assert len(started) == 1 and contents(feeds) == forked_copy


def test_the_parent_takes_story_pages_the_copy_has_not_reached(tmp_path: Path, monkeypatch) -> None:
    """Once done with feeds, tag pages and digests, the parent writes the story pages still unclaimed: the
    same files as an in-order render, and every page once."""
    import os

    from syndicator import forked, publish
    from syndicator.render import site

    assert forked.available(), "an earlier test left a thread running"
    monkeypatch.setattr(publish, "PAGE_CHUNK", 3)
    parent = os.getpid()
    by_parent: list[str] = []
    real_page = site.render_article_page

    def page(site_info, entry):  # type: ignore[no-untyped-def]
        if os.getpid() == parent:
            by_parent.append(entry.story_id)
        else:
            time.sleep(0.05)  # a slow copy: the parent must take over some chunks
        return real_page(site_info, entry)

    monkeypatch.setattr(publish, "render_article_page", page)
    archive = archive_of(tmp_path, Generator(13, tags=6).posts(40))
    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    feeds = tmp_path / "feeds"
    stories = int(re.search(r"new=(\d+)", run(config, "sync")).group(1))  # type: ignore[union-attr]
    shared = contents(feeds)
    assert sum(p.startswith("articles/") for p in shared) == stories
    assert 0 < len(by_parent) < stories and len(set(by_parent)) == len(by_parent)
    feeds.rename(tmp_path / "feeds-shared")
    monkeypatch.setattr(forked, "available", lambda: False)  # as in the service: everything in order
    run(config, "render")
    assert contents(feeds) == shared


def test_a_failed_forked_part_fails_the_render_and_the_next_sync_renders_everything(
    tmp_path: Path, monkeypatch
) -> None:
    from syndicator import publish
    from syndicator.errors import RenderError

    archive = archive_of(tmp_path, Generator(12, tags=5).posts(20))
    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    feeds = tmp_path / "feeds"
    real = publish._full_article_pages

    def broken(*args: object, **kwargs: object) -> int:
        raise RenderError("cannot write: No space left on device", path="articles/x.html")

    monkeypatch.setattr(publish, "_full_article_pages", broken)
    result = CliRunner().invoke(main, ["--config", str(config), "-q", "sync"])
    assert result.exit_code == 1
    assert "rendering the article pages failed: articles/x.html: cannot write: No space left" in result.stderr
    assert not list((feeds / ".syndicator").glob("rendered-*"))  # not marked as rendered
    del result  # the failed run ends: its recovery marker's lock goes with it (as when its process exits)
    gc.collect()
    monkeypatch.setattr(publish, "_full_article_pages", real)
    run(config, "sync")  # nothing changed in the archive, and yet everything is written
    synced = contents(feeds)
    assert sum(p.startswith("articles/") for p in synced) > 15
    assert list((feeds / ".syndicator").glob("rendered-*"))
    feeds.rename(tmp_path / "feeds-synced")
    run(config, "render")
    assert contents(feeds) == synced


def test_a_full_render_tells_its_stages_with_the_share_done(tmp_path: Path, monkeypatch) -> None:
    """A progress bar hears what a long render is at: tags, digest days and story pages, done of how many, up to
    all of them; with the story pages in a forked copy and without one."""
    from syndicator import forked, publish
    from syndicator.config import load
    from syndicator.storage.engine import open_database
    from syndicator.storage.repo import Repository
    from syndicator.sync import sync

    assert forked.available(), "an earlier test left a thread running"
    monkeypatch.setattr(publish, "PAGE_CHUNK", 4)
    monkeypatch.setattr(publish, "TAG_CHUNK", 3)
    archive = archive_of(tmp_path, Generator(17, tags=8).posts(30))
    settings = load(write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    repo = Repository(open_database(settings.database.url))
    sync(settings, repo, render=False)
    stories, tags = repo.story_count(), len(repo.tags())

    def counts(stages: list[str], kind: str) -> list[tuple[int, int]]:
        """(done, of) of each stage of a kind: "tags 3/7", "digests 0/5 days", "story pages 8/21"."""
        found = [re.search(r"([\d,]+)/([\d,]+)", s) for s in stages if s.startswith(kind)]
        return [(int(m[1].replace(",", "")), int(m[2].replace(",", ""))) for m in found if m]

    for copy in (True, False):
        monkeypatch.setattr(forked, "available", lambda copy=copy: copy)
        stages: list[str] = []
        publish.publish(settings, repo, progress=stages.append)
        assert list(dict.fromkeys(s.split()[0] for s in stages)) == ["tags", "digests", "story"], stages
        tag_counts, days, pages = counts(stages, "tags"), counts(stages, "digests"), counts(stages, "story pages")
        assert len(tag_counts) == -(-tags // 3) and tag_counts[-1] == (tags, tags), stages
        assert days and all(d < n for d, n in days), stages
        assert pages[-1] == (stories, stories) and pages == sorted(pages), stages

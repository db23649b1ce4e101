"""An incremental sync checks only the digest days its changes touched (old and new dates), with the same
outputs as a full render; days changed while digests were off are checked when they are on again."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, write_config

from syndicator.storage.repo import Repository

sys.path.insert(0, str(REPO))
from test_publish import contents, run  # the same CLI runner

from bench.generate import Generator


def _archive(tmp_path: Path, n: int = 30) -> tuple[Path, Path, list[Path]]:
    archive = tmp_path / "posts"
    archive.mkdir()
    paths = []
    for post in Generator(5, tags=8).posts(n):
        (archive / post.name).write_bytes(post.data)
        paths.append(archive / post.name)
    return archive, write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}"), paths


def _redate(path: Path, when: str) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"^date: .*$", f"date: {when}", text, count=1, flags=re.M), encoding="utf-8")


def _same_as_full_render(tmp_path: Path, config: Path, scans: list[int] | None = None, under: str = "") -> None:
    """A full render from the database gives the outputs the incremental syncs left (``scans``: the spy's
    calls, cleared: a full render reads every story's stamps)."""
    feeds = tmp_path / "feeds"
    incremental = {k: v for k, v in contents(feeds).items() if k.startswith(under)}
    shutil.move(feeds, tmp_path / f"feeds-{len(list(tmp_path.iterdir()))}")
    run(config, "render")
    assert {k: v for k, v in contents(feeds).items() if k.startswith(under)} == incremental
    if scans is not None:
        scans.clear()


def test_a_post_moved_to_another_day_updates_both_days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, config, paths = _archive(tmp_path)
    run(config, "sync")
    scans: list[int] = []
    real = Repository.story_stamps
    monkeypatch.setattr(Repository, "story_stamps", lambda self: scans.append(1) or real(self))
    # the first post alone on a day of its own, then back among the others: the day comes and goes
    _redate(paths[0], "2016-01-02 10:00:00")
    run(config, "sync")
    assert (tmp_path / "feeds/digest/2016-01-02.html").exists()
    assert scans == []  # only the touched days were read
    _same_as_full_render(tmp_path, config, scans)
    _redate(paths[0], "2017-03-01 09:00:00")
    run(config, "sync")
    assert not (tmp_path / "feeds/digest/2016-01-02.html").exists()
    assert scans == []
    _same_as_full_render(tmp_path, config, scans)
    # a post moved off a day that keeps other stories: that day's page counts one story less
    days = sorted(p.name for p in (tmp_path / "feeds/digest").glob("20*.html"))
    _redate(paths[5], "2016-01-03 10:00:00")
    run(config, "sync")
    assert scans == [] and sorted(p.name for p in (tmp_path / "feeds/digest").glob("20*.html")) != days
    _same_as_full_render(tmp_path, config)


def test_changes_while_digests_were_off_are_rendered_when_they_are_on(tmp_path: Path) -> None:
    archive, config, paths = _archive(tmp_path)
    run(config, "sync")
    # digests off: a post comes and another goes unseen by the digest records
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["digest"]["enabled"] = False
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    extra = Generator(6, tags=8).posts(1)
    post = next(iter(extra))
    (archive / ("zz-" + post.name)).write_bytes(post.data)
    paths[3].unlink()
    run(config, "sync")
    settings["digest"]["enabled"] = True
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    _redate(paths[7], "2016-01-04 10:00:00")
    run(config, "sync")
    # the digests (the tag pages rendered while digests were off lack their digest links until a render)
    _same_as_full_render(tmp_path, config, under="digest")

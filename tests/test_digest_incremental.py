"""A sync that changes only an older day leaves the digest feeds (the latest days) unrendered and unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from test_digest import DAY, NOW, article, local, make_settings, save

from syndicator import clock
from syndicator import digest as digest_mod
from syndicator.digest import Touched, forget_days, refresh_digests
from syndicator.storage.engine import open_database
from syndicator.storage.repo import FileState, ItemChange, Repository


@pytest.fixture(autouse=True)
def fixed_clock() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.set_now(None)


def test_an_older_day_changes_without_rendering_the_feed(tmp_path: Path, db_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repository(open_database(db_url))
    repo.ensure_source("s", "archive", "/s")
    settings = make_settings(tmp_path, db_url, feed_entries=1)  # the feeds show the newest day only
    out = settings.output.dir
    old_day, new_day = DAY, DAY + timedelta(days=3)
    save(repo, "s", article("a", local(old_day, 9, 0)), article("b", local(new_day, 10, 0)))
    refresh_digests(settings, repo, full=True)
    feeds = {fmt: (out / f"digest.{fmt}").read_bytes() for fmt in ("atom", "rss")}
    page = (out / f"digest/{old_day.isoformat()}.html").read_bytes()
    rendered: list[int] = []
    real = digest_mod.render_digest_feed
    monkeypatch.setattr(digest_mod, "render_digest_feed", lambda *a, **k: rendered.append(1) or real(*a, **k))
    clock.set_now(lambda: NOW + timedelta(hours=1))
    save(repo, "s", replace(article("a", local(old_day, 9, 0)), title="改过的标题", content_hash="x"))
    refresh_digests(settings, repo)
    assert rendered == []  # the older day is outside the feeds
    assert (out / f"digest/{old_day.isoformat()}.html").read_bytes() != page  # its page did change
    assert "改过的标题" in (out / f"digest/{old_day.isoformat()}.html").read_text(encoding="utf-8")
    refresh_digests(settings, repo, full=True)  # everything from scratch: the feeds' bytes were already right
    assert rendered and {fmt: (out / f"digest.{fmt}").read_bytes() for fmt in ("atom", "rss")} == feeds
    rendered.clear()
    clock.set_now(lambda: NOW + timedelta(hours=2))
    save(repo, "s", replace(article("b", local(new_day, 10, 0)), title="新的一天改了", content_hash="y"))
    refresh_digests(settings, repo)
    assert rendered and "新的一天改了" in (out / "digest.atom").read_text(encoding="utf-8")


def _three_days(tmp_path: Path, db_url: str) -> tuple[Repository, object, list[object]]:
    repo = Repository(open_database(db_url))
    repo.ensure_source("s", "archive", "/s")
    settings = make_settings(tmp_path, db_url, feed_entries=3)
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    save(repo, "s", *(article(f"k{i}", local(d, 9, i)) for i, d in enumerate(days)))
    refresh_digests(settings, repo, full=True)
    return repo, settings, days


def test_a_change_to_the_newest_day_reloads_that_day_only(tmp_path: Path, db_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    repo, settings, days = _three_days(tmp_path, db_url)
    out = settings.output.dir  # type: ignore[attr-defined]
    loaded: list[object] = []
    real = digest_mod._load
    monkeypatch.setattr(digest_mod, "_load", lambda *a, **k: loaded.append(a[3]) or real(*a, **k))
    clock.set_now(lambda: NOW + timedelta(hours=1))
    save(repo, "s", article("new", local(days[2], 11, 0)))
    refresh_digests(settings, repo)  # type: ignore[arg-type]
    assert loaded == [days[2]]  # the feeds keep the other days' entries as written
    incremental = {fmt: (out / f"digest.{fmt}").read_bytes() for fmt in ("atom", "rss")}
    assert "新闻 new" in incremental["atom"].decode("utf-8")
    refresh_digests(settings, repo, full=True)  # type: ignore[arg-type]
    assert {fmt: (out / f"digest.{fmt}").read_bytes() for fmt in ("atom", "rss")} == incremental


def test_a_feed_entry_that_does_not_match_its_day_is_rendered_again(tmp_path: Path, db_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo, settings, days = _three_days(tmp_path, db_url)
    out = settings.output.dir  # type: ignore[attr-defined]
    full = {fmt: (out / f"digest.{fmt}").read_bytes() for fmt in ("atom", "rss")}
    atom = full["atom"].decode("utf-8")
    # an older day's entry says another count (say, a feed of an older version): it is not kept
    (out / "digest.atom").write_text(atom.replace(f"{days[0].isoformat()}（1 篇）", f"{days[0].isoformat()}（7 篇）"),
                                     encoding="utf-8")
    loaded: list[object] = []
    real = digest_mod._load
    monkeypatch.setattr(digest_mod, "_load", lambda *a, **k: loaded.append(a[3]) or real(*a, **k))
    clock.set_now(lambda: NOW + timedelta(hours=1))
    save(repo, "s", replace(article("k2", local(days[2], 9, 2)), title="改了", content_hash="z"))
    refresh_digests(settings, repo)  # type: ignore[arg-type]
    assert sorted(loaded) == [days[0], days[2]]  # type: ignore[type-var]
    incremental = {fmt: (out / f"digest.{fmt}").read_bytes() for fmt in ("atom", "rss")}
    refresh_digests(settings, repo, full=True)  # type: ignore[arg-type]
    assert {fmt: (out / f"digest.{fmt}").read_bytes() for fmt in ("atom", "rss")} == incremental
    assert "（7 篇）" not in incremental["atom"].decode("utf-8")


def test_a_refresh_of_the_touched_days_equals_a_full_one(tmp_path: Path, db_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    repo, settings, days = _three_days(tmp_path, db_url)
    out = settings.output.dir  # type: ignore[attr-defined]
    monkeypatch.setattr(Repository, "story_stamps", lambda self: pytest.fail("every story's stamps were read"))
    clock.set_now(lambda: NOW + timedelta(hours=1))
    # the oldest day's only story moves to the middle day (its old day goes), a new story on the newest day
    moved = repo.save_batch("s", [ItemChange("k0", FileState(1, 2, "x"), replace(
        article("k0", local(days[1], 8, 0)), content_hash="x"))])
    added = repo.save_batch("s", [ItemChange("n", FileState(1, 1, "n"), article("n", local(days[2], 12, 0)))])
    assert moved.moved_from == {local(days[0], 9, 0)}
    touched = Touched(frozenset(moved.changed_stories | added.changed_stories), frozenset(moved.moved_from))
    refresh_digests(settings, repo, touched=touched)  # type: ignore[arg-type]
    # digests off for a sync: its day is marked, and the next refresh with digests on renders it too
    clock.set_now(lambda: NOW + timedelta(hours=2))
    off = repo.save_batch("s", [ItemChange("k1", FileState(1, 3, "y"), replace(
        article("k1", local(days[1], 9, 1)), title="关时改的", content_hash="y"))])
    forget_days(settings, repo, Touched(frozenset(off.changed_stories)))  # type: ignore[arg-type]
    refresh_digests(settings, repo, touched=Touched(frozenset()))  # type: ignore[arg-type]
    incremental = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert "关时改的" in incremental[f"digest/{days[1].isoformat()}.html"].decode("utf-8")
    assert f"digest/{days[0].isoformat()}.html" not in incremental
    monkeypatch.undo()
    for p in out.rglob("*"):
        if p.is_file():
            p.unlink()
    refresh_digests(settings, repo, full=True)  # type: ignore[arg-type]
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == incremental

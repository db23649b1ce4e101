"""A long-running process keeps a busy day's digest entries (``Repository.remember_busy_days``): after any
change, ``day_entries`` equals a fresh load, and the stories that did not change are not loaded again."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from test_digest import DAY, article, local, save

from syndicator.render.digest import day_bounds
from syndicator.storage import repo as repo_mod
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository

BASE = "http://news.example.org/"
BOUNDS = day_bounds(DAY, "Asia/Shanghai")


@pytest.fixture
def repos(db_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Repository, Repository]:
    monkeypatch.setattr(repo_mod, "BUSY_DAY", 5)  # a "busy" day of a handful of stories
    engine = open_database(db_url)
    cached, plain = Repository(engine), Repository(engine)
    cached.remember_busy_days()
    for name in ("s", "t"):
        plain.ensure_source(name, "archive", f"/{name}")
    return cached, plain


def _same(cached: Repository, plain: Repository, *bounds: tuple) -> None:
    for start, end in bounds or (BOUNDS,):
        assert cached.day_entries(start, end, BASE) == plain.stories_published_between(start, end, BASE, content=False)


def test_busy_day_entries_follow_every_change(repos: tuple[Repository, Repository]) -> None:
    cached, plain = repos
    posts = [article(f"k{i:02d}", local(DAY, 8, i * 3), body=f"第{i}篇的正文，各不相同：{i * 37}。",
                     tags=("甲",) if i % 2 else ("甲", "乙")) for i in range(12)]
    save(plain, "s", *posts)
    first = cached.day_entries(*BOUNDS, BASE)
    assert len(first) == 12
    again = cached.day_entries(*BOUNDS, BASE)
    assert again == first and all(a is b for a, b in zip(again, first, strict=True))  # nothing loaded again

    save(plain, "s", replace(posts[3], title="改过的标题"))  # an edited headline
    _same(cached, plain)
    kept = {e.story_id: e for e in cached.day_entries(*BOUNDS, BASE)}
    assert sum(e is kept.get(e.story_id) for e in first) == 11  # only the edited story was loaded again

    save(plain, "t", replace(posts[5], source="t", key="r05", id="r05", channel="四川频道"))  # a re-post
    _same(cached, plain)
    assert any(e.also_in for e in cached.day_entries(*BOUNDS, BASE))
    save(plain, "s", replace(posts[6], tags=("丙",)))  # re-tagged
    _same(cached, plain)
    save(plain, "s", article("k99", local(DAY, 20, 0), body="新来的一篇。"))  # a new story
    _same(cached, plain)
    plain.save_batch("s", [], deleted=["k07"])  # withdrawn
    _same(cached, plain)
    plain.save_batch("s", [], deleted=["k05"])  # the re-posted story loses its first article
    _same(cached, plain)
    next_day = day_bounds(DAY + timedelta(days=1), "Asia/Shanghai")
    save(plain, "s", replace(posts[8], published=local(DAY + timedelta(days=1), 9, 0)))  # moved to the next day
    _same(cached, plain, BOUNDS, next_day)
    assert len(cached.day_entries(*BOUNDS, BASE)) == 11  # 12 + 1 new - 1 withdrawn - 1 moved


def test_off_by_default_and_quiet_days_are_not_kept(repos: tuple[Repository, Repository]) -> None:
    cached, plain = repos
    save(plain, "s", *(article(f"q{i}", local(DAY, 9, i), body=f"安静的一天：{i}。") for i in range(3)))
    first = cached.day_entries(*BOUNDS, BASE)
    assert len(first) == 3
    assert not any(a is b for a, b in zip(cached.day_entries(*BOUNDS, BASE), first, strict=True))  # < BUSY_DAY
    assert plain.day_entries(*BOUNDS, BASE) == first  # without remember_busy_days: a plain load


def test_the_service_warms_the_newest_day(repos: tuple[Repository, Repository], tmp_path: Path, db_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``warm_latest_day`` (the service, after its first tick) loads the newest day once: the first change
    after a restart finds it kept."""
    from test_digest import make_settings

    from syndicator.digest import refresh_digests, warm_latest_day

    cached, plain = repos
    save(plain, "s", *(article(f"w{i}", local(DAY, 10, i), body=f"第{i}篇：{i * 13}。") for i in range(8)))
    save(plain, "s", article("old", local(DAY - timedelta(days=3), 10, 0), body="三天前的一篇。"))
    settings = make_settings(tmp_path, db_url)
    refresh_digests(settings, plain, full=True)  # the digest records, as every sync leaves them
    warm_latest_day(settings, cached)
    loads: list[int] = []
    real = cached._entries
    monkeypatch.setattr(cached, "_entries", lambda s, stories, *a, **k: loads.append(len(stories)) or real(s, stories, *a, **k))
    assert cached.day_entries(*BOUNDS, BASE) == plain.stories_published_between(*BOUNDS, BASE, content=False)
    assert not any(loads)  # nothing left to load: warmed


def test_days_loaded_together_equal_each_day_loaded_alone(repos: tuple[Repository, Repository]) -> None:
    """``entries_of_days`` (a full render loads many days with one query) gives each day exactly what
    ``day_entries`` gives it, in the same order; stories between the given days are left out."""
    _, plain = repos
    days = [DAY + timedelta(days=i) for i in range(5)]
    posts = [article(f"m{i:02d}", local(days[i % 5], (i * 5) % 24, i % 60), body=f"第{i}天的新闻，编号{i * 13}。")
             for i in range(30)]
    posts.append(article("edge", local(days[2], 0, 0), body="零点整发的一篇。"))  # exactly at a day's start
    save(plain, "s", *posts)
    wanted = [days[0], days[1], days[3]]  # not day 2: its stories are in the span and must not show up
    bounds = [day_bounds(d, "Asia/Shanghai") for d in wanted]
    together = plain.entries_of_days(bounds, BASE)
    assert [len(e) for e in together] == [6, 6, 6]
    assert together == [plain.day_entries(start, end, BASE) for start, end in bounds]
    assert plain.entries_of_days([], BASE) == []


def test_digests_saved_together_equal_digests_saved_one_by_one(db_url: str) -> None:
    from datetime import UTC, datetime

    one = Repository(open_database(db_url))
    when = datetime(2024, 5, 1, 8, tzinfo=UTC)
    rows = [(f"2024-05-0{i}", f"fp{i}", i, when + timedelta(days=i)) for i in range(1, 4)]
    states = one.save_digests(rows)
    assert list(states) == [r[0] for r in rows]
    assert all(states[d].fingerprint == fp and states[d].stories == n and states[d].updated == t
               for d, fp, n, t in rows)
    # the same fingerprint again: nothing moves; a new one: updated moves on, as with save_digest
    assert one.save_digests(rows) == states
    moved = one.save_digests([("2024-05-02", "other", 5, when)])["2024-05-02"]
    assert moved.stories == 5 and moved.updated > states["2024-05-02"].updated
    assert one.save_digest("2024-05-03", "fp3", 3, when) == states["2024-05-03"]

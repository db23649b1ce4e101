"""The tick in-process on a real database (SQLite and PostgreSQL), with the clock driven by the test."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import write_config
from hypothesis import given
from hypothesis import strategies as st

from syndicator import clock
from syndicator import sync as sync_mod
from syndicator.config import SourceSettings, load
from syndicator.errors import ConfigError, Interrupted
from syndicator.scheduler import Ticker, Timing, cron_trigger, next_due
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository

from .helpers import write_post

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def src(**kw: object) -> SourceSettings:
    return SourceSettings.model_validate({"name": "s", "type": "archive", "path": "x", **kw})


@pytest.fixture
def frozen() -> object:
    now = [T0]
    clock.set_now(lambda: now[0])
    yield now
    clock.set_now(None)


def test_interval_jitter_stays_within_the_fraction() -> None:
    rng = random.Random(1)
    timing = Timing(jitter=0.1, backoff_base=60, backoff_max=3600)
    dues = [next_due(src(every="15m"), 0, T0, timing, rng) for _ in range(200)]
    gaps = [(d - T0).total_seconds() for d in dues]
    assert min(gaps) >= 900 and max(gaps) <= 990
    assert len(set(gaps)) > 150  # sources sharing an interval drift apart


@given(failures=st.integers(1, 60), every=st.sampled_from(["1s", "30s", "15m", "2h"]), seed=st.integers(0, 1000))
def test_backoff_grows_and_is_capped(failures: int, every: str, seed: int) -> None:
    timing = Timing(jitter=0.2, backoff_base=60, backoff_max=6 * 3600)
    s = src(every=every)
    gap = (next_due(s, failures, T0, timing, random.Random(seed)) - T0).total_seconds()
    assert gap <= 6 * 3600
    assert gap >= min(6 * 3600, max(60, s.interval_seconds))  # never faster than the schedule or the base
    later = (next_due(s, failures + 1, T0, timing, random.Random(seed)) - T0).total_seconds()
    assert later >= gap or later == 6 * 3600


def test_backoff_without_jitter_doubles() -> None:
    timing = Timing(jitter=0, backoff_base=10, backoff_max=60)
    gaps = [(next_due(src(every="10s"), f, T0, timing, random.Random()) - T0).total_seconds() for f in range(1, 6)]
    assert gaps == [10, 20, 40, 60, 60]


def test_cron_due_is_the_next_fire_time_in_the_source_timezone() -> None:
    timing = Timing(jitter=0, backoff_base=60, backoff_max=3600)
    due = next_due(src(cron="30 9 * * *", timezone="Asia/Shanghai"), 0, T0, timing, random.Random())
    assert due == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai is 01:30 UTC; 08:00 UTC is past it


def test_bad_cron_is_a_config_error_naming_the_source() -> None:
    with pytest.raises(ConfigError, match=r"sources\[s\]\.cron.*bad crontab"):
        cron_trigger(src(cron="61 * * * *"))


def test_cron_shape_is_checked_when_loading(tmp_path: Path, archive: Path) -> None:
    cfg = write_config(tmp_path, archive)
    text = cfg.read_text(encoding="utf-8").replace("every: 15m", "every: 15m\n  cron: '* *'")
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="five fields"):
        load(cfg)


def _ticker(tmp_path: Path, archive: Path, db_url: str, **schedule: object) -> Ticker:
    cfg = write_config(tmp_path, archive, db_url=db_url,
                       schedule={"tick": "1s", "jitter": 0, "backoff_base": "10s", "backoff_max": "60s", **schedule})
    text = cfg.read_text(encoding="utf-8").replace("every: 15m", "every: 10s")
    cfg.write_text(text, encoding="utf-8")
    settings = load(cfg)
    return Ticker(settings, Repository(open_database(settings.database.url)), threading.Event())


def test_failing_source_backs_off_then_recovers(tmp_path: Path, db_url: str, frozen: list[datetime]) -> None:
    missing = tmp_path / "not-yet"
    ticker = _ticker(tmp_path, missing, db_url)
    ticker.prepare()
    repo = ticker.repo
    gaps = []
    for _ in range(5):
        ticker.tick()
        failures, due = repo.schedule_state("seed-archive")
        assert due is not None
        gaps.append((failures, (due - frozen[0]).total_seconds()))
        frozen[0] = due
    assert gaps == [(1, 10), (2, 20), (3, 40), (4, 60), (5, 60)]
    (st_,) = repo.source_status()
    assert "archive folder not found" in (st_.last_error or "")
    # not due yet: a tick before next_due does not poll
    frozen[0] -= timedelta(seconds=1)
    ticker.tick()
    assert repo.schedule_state("seed-archive")[0] == 5
    frozen[0] += timedelta(seconds=1)
    missing.mkdir()
    write_post(missing, 1)
    ticker.tick()
    failures, due = repo.schedule_state("seed-archive")
    assert failures == 0 and due == frozen[0] + timedelta(seconds=10)
    (st_,) = repo.source_status()
    assert st_.articles == 1 and st_.last_success == frozen[0]
    assert (tmp_path / "feeds" / "all.atom").exists()


def test_restart_keeps_stored_due_times(tmp_path: Path, archive: Path, frozen: list[datetime]) -> None:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    ticker = _ticker(tmp_path, archive, db)
    ticker.prepare()
    ticker.tick()
    _, due = ticker.repo.schedule_state("seed-archive")
    assert due == T0 + timedelta(seconds=10)
    again = _ticker(tmp_path, archive, db)
    again.prepare()  # a restart: the stored due time stays
    assert again.repo.schedule_state("seed-archive")[1] == due
    assert again.repo.due_sources(["seed-archive"], T0 + timedelta(seconds=5)) == []
    assert again.repo.due_sources(["seed-archive"], due) == ["seed-archive"]


def test_stop_drops_only_the_unsaved_batch(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(7):
        write_post(folder, n)
    ticker = _ticker(tmp_path, folder, db_url)
    ticker.prepare()
    monkeypatch.setattr(sync_mod, "BATCH", 2)
    asked = iter([False] * 5 + [True] * 100)
    with pytest.raises(Interrupted, match="stopped after 5 files; the unsaved batch of 1 was dropped"):
        sync_mod.sync(ticker.settings, ticker.repo, render=False, stop=lambda: next(asked))
    repo = ticker.repo
    assert repo.counts()["articles"] == 4  # two committed batches of two
    (st_,) = repo.source_status()
    assert st_.last_attempt is None  # not recorded as a poll: still due after a restart
    report, _ = sync_mod.sync(ticker.settings, repo, render=False)
    assert report.total("new") == 3 and report.total("duplicates") == 0
    assert repo.counts()["articles"] == 7


def test_states_reported_by_status_and_healthz(tmp_path: Path, archive: Path) -> None:
    from syndicator.health import health, state_of
    from syndicator.scheduler import SERVICE_ROLE

    ticker = _ticker(tmp_path, archive, f"sqlite:///{tmp_path / 'db.sqlite'}")
    ticker.prepare()
    ok, report = health(ticker.settings, ticker.repo, SERVICE_ROLE)
    assert ok and report["sources"][0]["state"] == "pending" and report["last_run"] is None
    ticker.tick()
    ok, report = health(ticker.settings, ticker.repo, SERVICE_ROLE)
    assert ok and report["status"] == "ok" and report["sources"][0]["state"] == "ok"
    (st_,) = ticker.repo.source_status()
    assert state_of(st_, None) == "removed" and state_of(st_, False) == "disabled"
    from dataclasses import replace

    assert state_of(replace(st_, disabled_reason="410 Gone"), True) == "disabled"
    assert state_of(replace(st_, consecutive_failures=2), True) == "failing"


def test_a_bug_in_a_source_backs_off_like_a_failure(
    tmp_path: Path, archive: Path, frozen: list[datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    ticker = _ticker(tmp_path, archive, f"sqlite:///{tmp_path / 'db.sqlite'}")
    ticker.prepare()
    monkeypatch.setitem(sync_mod.SOURCE_TYPES, "archive", broken)
    ticker.tick()
    failures, due = ticker.repo.schedule_state("seed-archive")
    assert failures == 1 and due == T0 + timedelta(seconds=10)
    (st_,) = ticker.repo.source_status()
    assert st_.last_error == "unexpected RuntimeError: boom"


def test_the_first_tick_counts_a_source_polled_for_the_watcher_as_polled(
        tmp_path: Path, archive: Path, frozen: list[datetime], caplog: pytest.LogCaptureFixture) -> None:
    """At start the service has its watched archives scanned in full (what changed while it was stopped), due
    or not: the first tick's line said `0 source(s) polled` while it had stored the seed's post."""
    ticker = _ticker(tmp_path, archive, f"sqlite:///{tmp_path / 'db.sqlite'}")
    ticker.prepare()
    ticker.repo.set_next_due("seed-archive", T0 + timedelta(hours=1))  # not due: only the watcher's scan polls it
    ticker.hint("seed-archive", None)
    with caplog.at_level("INFO", "syndicator.scheduler"):
        ticker.tick()
    assert ticker.repo.counts()["articles"] == 1
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("first tick done")]
    assert "(1 source(s) polled, " in line, line

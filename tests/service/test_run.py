"""`syndicator run` as a real process on real sockets: schedule, serving, stop, locks, backoff, a feed reader."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
import yaml
from click.testing import CliRunner
from conftest import write_config

from syndicator.cli import main
from syndicator.normalize.tags import slugify

from .helpers import TAG, Service, cli, free_port, healthz, http_get, metric, wait_for, write_post

FAST = {"tick": "0.2s", "jitter": 0.1, "backoff_base": "1s", "backoff_max": "3s", "lock_wait": "60s"}
TAG_FEED = f"tags/{slugify(TAG)}.atom"


def service_config(tmp_path: Path, archive: Path, db_url: str | None = None, every: str = "1s", **extra: Any) -> tuple[Path, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    cfg = write_config(tmp_path, archive, db_url=db_url, schedule={**FAST, **extra.pop("schedule", {})},
                       server={"host": "127.0.0.1", "port": port}, site={"title": "t", "base_url": base}, **extra)
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["sources"][0]["every"] = every
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return cfg, base


def feed_titles(base: str, path: str) -> list[str]:
    code, body, _ = http_get(base + path)
    if code != 200:
        return []
    return [e.title for e in feedparser.parse(body).entries]


def inproc(cfg: Path, *args: str) -> tuple[int, str]:
    """A CLI command in this process (a fresh interpreter costs seconds on a busy machine)."""
    result = CliRunner().invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def status(cfg: Path) -> dict[str, Any]:
    code, out = inproc(cfg, "status", "--json")
    assert code == 0
    return dict(json.loads(out))


def stored(cfg: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in inproc(cfg, "articles", "--json")[1].splitlines()]


@pytest.fixture
def posts(tmp_path: Path) -> Path:
    folder = tmp_path / "posts"
    folder.mkdir()
    write_post(folder, 1)
    return folder


def test_new_file_is_served_within_seconds_and_sigterm_exits_cleanly(tmp_path: Path, posts: Path, db_url: str) -> None:
    cfg, base = service_config(tmp_path, posts, db_url)
    svc = Service(cfg)
    try:
        svc.wait_started(base)
        first = wait_for(lambda: feed_titles(base, TAG_FEED), what="the tag feed")
        assert len(first) == 1
        title = write_post(posts, 2)
        wait_for(lambda: title in feed_titles(base, TAG_FEED), timeout=10, what="the new post in the tag feed")
        code, _, headers = http_get(base + TAG_FEED)
        assert code == 200 and headers["Content-Type"].startswith("application/atom+xml")
        assert http_get(base + TAG_FEED, {"If-None-Match": headers["ETag"]})[0] == 304
        assert status(cfg)["service"]["running"] is True
        code, seconds = svc.stop(signal.SIGTERM)
    finally:
        svc.close()
    assert code == 0, svc.text()
    assert seconds < 10  # "a few seconds", on a busy shared machine
    assert "Traceback" not in svc.text()
    # consistent: a sync afterwards finds nothing to do, nothing is stored twice
    code, out = inproc(cfg, "sync")
    assert code == 0
    assert "new=0 updated=0" in out and "feeds_written=0" in out
    rows = stored(cfg)
    assert sorted(r["source_path"] for r in rows) == ["00001.md", "00002.md"]
    after = status(cfg)
    assert after["service"]["running"] is False
    assert after["sources"][0]["state"] == "ok" and after["sources"][0]["articles"] == 2


@pytest.mark.parametrize("watched", [False, True])
def test_restart_resumes_the_stored_schedule(tmp_path: Path, posts: Path, watched: bool) -> None:
    """A restart keeps each source's due time. A watched archive is scanned once at start (what changed while
    the service was stopped; tests/service/test_watch.py) without moving it; an unwatched one is not polled."""
    cfg, base = service_config(tmp_path, posts, every="1h")
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["sources"][0]["watch"] = watched
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    svc = Service(cfg)
    try:
        svc.wait_started(base)
        polled = wait_for(lambda: status(cfg)["sources"][0]["last_success"], what="the first poll")
        # the first scheduled poll (a watched folder's start-up scan may come before it) moves the due time
        # an hour on
        later = (datetime.now(UTC) + timedelta(minutes=30)).isoformat(timespec="seconds")
        due = wait_for(lambda: (d := status(cfg)["sources"][0]["next_due"]) and d > later and d,
                       what="the first scheduled poll")
        polled = status(cfg)["sources"][0]["last_success"]
        assert svc.stop()[0] == 0
    finally:
        svc.close()
    svc = Service(cfg, name="run2")
    try:
        svc.wait_started(base)
        ticks = {status(cfg)["service"]["last_tick_at"]}
        wait_for(lambda: status(cfg)["service"]["last_tick_at"] not in ticks, what="a few ticks")
        row = status(cfg)["sources"][0]
        assert row["next_due"] == due  # not due for an hour
        if not watched:
            assert row["last_success"] == polled  # not polled again
        assert svc.stop()[0] == 0
    finally:
        svc.close()


def test_failing_source_backs_off_recovers_and_reports(tmp_path: Path) -> None:
    missing = tmp_path / "later"
    cfg, base = service_config(tmp_path, missing)
    svc = Service(cfg, "--log-format", "json")
    try:
        svc.wait_started(base)
        def settled(h: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]] | None:
            # the attempt and its next due time are two writes: wait for a reading taken after both
            row = h[1]["sources"][0]
            ok = row["consecutive_failures"] >= 3 and row["next_due"] and row["next_due"] > row["last_attempt"]
            return h if ok else None

        code, report = wait_for(lambda: settled(healthz(base)), timeout=20, what="three failures")
        assert code == 503 and report["ok"] is False and report["status"] == "failing"
        row = report["sources"][0]
        assert row["state"] == "failing" and "archive folder not found" in row["last_error"]
        # backoff: 1s, 2s, then the 3s cap (plus at most 10 % jitter) between attempts
        gap = (_ts(row["next_due"]) - _ts(row["last_attempt"]))
        assert 2.0 <= gap <= 4.0, row
        failures = metric(base, "syndicator_poll_failures_total", source="seed-archive")
        assert failures is not None and failures >= 3
        assert metric(base, "syndicator_source_consecutive_failures", source="seed-archive") >= 3  # type: ignore[operator]
        missing.mkdir()
        title = write_post(missing, 7)
        wait_for(lambda: healthz(base)[0] == 200, timeout=10, what="recovery")
        code, report = healthz(base)
        assert report["sources"][0]["state"] == "ok" and report["sources"][0]["last_error"] is None
        # the tag feed is written after all.atom in the same render: wait for the last one
        wait_for(lambda: title in feed_titles(base, TAG_FEED), what="the post after recovery")
        assert metric(base, "syndicator_articles_new_total", source="seed-archive") == 1
        assert metric(base, "syndicator_sync_duration_seconds_count", source="seed-archive") >= 4  # type: ignore[operator]
        assert metric(base, "syndicator_feed_bytes", feed=TAG_FEED) > 500  # type: ignore[operator]
        code, out = inproc(cfg, "status")
        assert code == 0 and "seed-archive  ok" in out
        assert svc.stop()[0] == 0
    finally:
        svc.close()
    lines = [json.loads(line) for line in svc.text().splitlines()]
    assert all({"time", "level", "logger", "source", "message"} <= set(line) for line in lines)
    about = [line for line in lines if "archive folder not found" in line["message"]]
    assert about and all(line["source"] == "seed-archive" for line in about)


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_second_run_refuses_and_sync_takes_turns(tmp_path: Path, posts: Path, db_url: str) -> None:
    cfg, base = service_config(tmp_path, posts, db_url)
    svc = Service(cfg)
    try:
        svc.wait_started(base)
        second = cli(cfg, "run", "--port", str(free_port()), timeout=60)
        assert second.returncode == 1
        assert "already running" in second.stderr and "Traceback" not in second.stderr
        # many new files at once: the service and a shell `sync` both want them
        for n in range(10, 70):
            write_post(posts, n)
        done = cli(cfg, "sync", timeout=120)
        assert done.returncode == 0, done.stderr
        assert "locked" not in done.stderr and "Traceback" not in done.stderr
        wait_for(lambda: len(feedparser.parse(http_get(base + "all.atom")[1]).entries) == 50, what="the feed")
        assert svc.stop()[0] == 0
    finally:
        svc.close()
    rows = stored(cfg)
    assert len(rows) == 61 and len({r["id"] for r in rows}) == 61
    assert len({r["story_id"] for r in rows}) == 61


def test_sigterm_during_a_long_first_sync_exits_fast_and_loses_nothing(tmp_path: Path) -> None:
    from conftest import CORPUS

    if not (CORPUS / "posts").is_dir():
        pytest.skip("the corpus (../shared/corpus) is not here")
    folder = tmp_path / "corpus"
    folder.mkdir()
    for path in sorted((CORPUS / "posts").iterdir())[:600]:
        shutil.copy2(path, folder / path.name)
    cfg, _ = service_config(tmp_path, folder)
    svc = Service(cfg)
    try:
        wait_for(lambda: "scheduler started" in svc.text(), timeout=30, what="the scheduler")
        time.sleep(0.3)  # 600 files take seconds to read: the signal comes in the middle
        code, seconds = svc.stop(signal.SIGINT)
    finally:
        svc.close()
    assert code == 0, svc.text()
    assert seconds < 10, seconds
    stopped = re.search(r"stopped after (\d+) files", svc.text())
    assert stopped and int(stopped.group(1)) > 0, svc.text()
    code, _ = inproc(cfg, "sync")  # picks up exactly what the stopped sync had not stored
    assert code in (0, 1)  # 1: some corpus files are unreadable on purpose
    code, out = inproc(cfg, "sync")
    assert "new=0 updated=0" in out
    rows = stored(cfg)
    assert len({r["id"] for r in rows}) == len(rows) > 300


def test_newsboat_sees_the_items_and_no_duplicates(tmp_path: Path, posts: Path) -> None:
    newsboat = shutil.which("newsboat")
    if newsboat is None:
        pytest.fail("newsboat is not installed (.ci/run installs it; locally: apt-get install newsboat)")
    cfg, base = service_config(tmp_path, posts)
    home = tmp_path / "home"
    (home / ".newsboat").mkdir(parents=True)
    urls = home / "urls"
    urls.write_text(base + TAG_FEED + "\n", encoding="utf-8")
    (home / "config").write_text("", encoding="utf-8")
    cache = home / "cache.db"

    def reload() -> list[str]:
        done = subprocess.run(
            [newsboat, "-u", str(urls), "-c", str(cache), "-C", str(home / "config"), "-x", "reload"],
            capture_output=True, text=True, timeout=60, env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(cache) as db:
            return [t for (t,) in db.execute("SELECT title FROM rss_item ORDER BY title")]

    svc = Service(cfg)
    try:
        svc.wait_started(base)
        wait_for(lambda: feed_titles(base, TAG_FEED), what="the tag feed")
        first = reload()
        assert len(first) == 1 and "第1号测试新闻" in first[0]
        title = write_post(posts, 2)
        wait_for(lambda: title in feed_titles(base, TAG_FEED), what="the new post")
        second = reload()
        assert len(second) == 2 and len(set(second)) == 2
        assert any("第2号测试新闻" in t for t in second)
        assert reload() == second  # nothing new: nothing added
        assert svc.stop()[0] == 0
    finally:
        svc.close()

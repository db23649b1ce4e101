"""Watched archives: the watcher's hints, its fallback, the ticker's coalescing, and a real `syndicator run`
that shows a new, edited and deleted post in all.atom within seconds while its regular poll is an hour away."""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import write_config

from syndicator import watch
from syndicator.config import load
from syndicator.errors import ConfigError
from syndicator.scheduler import Ticker
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository

from .helpers import Service, wait_for, write_post
from .test_run import service_config


class Hints:
    def __init__(self) -> None:
        self.got: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, source: str, path: str | None) -> None:
        with self.lock:
            self.got.append((source, path))

    def paths(self) -> set[str | None]:
        with self.lock:
            return {p for _, p in self.got}


def test_watcher_hints_post_files_created_closed_moved_and_deleted(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    (posts / "sub").mkdir(parents=True)
    (posts / "old.md").write_text("x", encoding="utf-8")
    hints = Hints()
    watcher = watch.start({"a": posts}, hints)
    try:
        assert watcher.watched == ["a"]
        write_post(posts, 1)  # written to a hidden temporary name, then renamed
        (posts / "sub" / "b.txt").write_text("y", encoding="utf-8")
        (posts / "image.png").write_bytes(b"\x89PNG")
        (posts / "old.md").unlink()
        wait_for(lambda: {"00001.md", f"sub{os.sep}b.txt", "old.md"} <= hints.paths(), timeout=5, what="hints")
        assert all(source == "a" for source, _ in hints.got)
        assert not {p for p in hints.paths() if p and (p.endswith(".png") or p.endswith(".tmp"))}
        (posts / "new-folder").mkdir()
        wait_for(lambda: None in hints.paths(), timeout=5, what="a folder event: scan in full")
    finally:
        watcher.stop()
    assert not watcher._observer.is_alive()


def test_a_folder_that_cannot_be_watched_is_one_warning_naming_the_source(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="syndicator.watch")
    watcher = watch.start({"missing": tmp_path / "nope"}, Hints())
    watcher.stop()
    assert watcher.watched == []
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("missing: not watching ") and "regular polls" in line

    caplog.clear()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    from watchdog.observers.api import BaseObserver

    monkeypatch.setattr(BaseObserver, "schedule", full)
    watcher = watch.start({"busy": tmp_path}, Hints())
    watcher.stop()
    assert watcher.watched == []
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("busy: not watching ") and "inotify" in line


def test_watch_is_only_for_archive_sources(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, tmp_path, schedule={"watch_delay": "0.05s"})
    settings = load(cfg)
    assert settings.sources[0].watched and settings.schedule.seconds("watch_delay") == 0.05
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace("type: archive", "type: archive\n  watch: false"), encoding="utf-8")
    assert not load(cfg).sources[0].watched
    cfg.write_text(text.replace("type: archive", "type: feed\n  url: https://example.com/rss\n  watch: true"),
                   encoding="utf-8")
    with pytest.raises(ConfigError, match="'seed-archive' of type feed cannot be watched") as info:
        load(cfg)
    assert "\n" not in str(info.value)


def _ticker(tmp_path: Path, watch_delay: str) -> tuple[Path, Ticker]:
    """An archive of one post and a ticker over it (in this process, no scheduler thread)."""
    posts = tmp_path / "posts"
    posts.mkdir()
    write_post(posts, 1)
    cfg = write_config(tmp_path, posts, schedule={"tick": "1s", "jitter": 0, "watch_delay": watch_delay})
    settings = load(cfg)
    return posts, Ticker(settings, Repository(open_database(settings.database.url)), threading.Event())


def test_ticker_coalesces_hints_and_polls_only_them_without_moving_the_schedule(tmp_path: Path) -> None:
    posts, ticker = _ticker(tmp_path, "0.01s")
    wakes: list[float] = []
    ticker.wake = wakes.append
    ticker.prepare()
    ticker.tick()  # the first, full poll
    repo = ticker.repo
    _, due = repo.schedule_state("seed-archive")
    assert due is not None
    write_post(posts, 2)
    write_post(posts, 3)
    ticker.hint("seed-archive", "00002.md")
    ticker.hint("seed-archive", "00003.md")
    assert wakes == [0.01]  # one wake for the batch
    ticker.tick()
    assert repo.schedule_state("seed-archive")[1] == due  # the regular full poll stays where it was
    assert set(repo.file_states("seed-archive")) == {"00001.md", "00002.md", "00003.md"}
    # a file the watcher did not report waits for the regular poll
    write_post(posts, 4)
    ticker.hint("seed-archive", "00003.md")
    ticker.tick()
    assert "00004.md" not in repo.file_states("seed-archive")
    assert wakes == [0.01, 0.01]


def test_running_service_shows_new_edited_and_deleted_posts_at_once(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    write_post(posts, 1)
    cfg, base = service_config(tmp_path, posts, every="1h", schedule={"tick": "1s"})
    out = tmp_path / "feeds" / "all.atom"

    def atom() -> str:
        return out.read_text(encoding="utf-8") if out.exists() else ""

    svc = Service(cfg)
    try:
        svc.wait_started(base)
        wait_for(lambda: "first tick done" in svc.text(), what="the first tick")
        wait_for(lambda: "第1号测试新闻" in atom(), what="the first post")
        seconds = []
        started = time.monotonic()
        title = write_post(posts, 2)
        wait_for(lambda: title in atom(), timeout=5, step=0.02, what="the new post")
        seconds.append(time.monotonic() - started)
        started = time.monotonic()
        path = posts / "00002.md"
        path.write_text(path.read_text(encoding="utf-8").replace("title: ", "title: 改"), encoding="utf-8")
        wait_for(lambda: "改" + title in atom(), timeout=5, step=0.02, what="the edited post")
        seconds.append(time.monotonic() - started)
        started = time.monotonic()
        path.unlink()
        wait_for(lambda: title not in atom(), timeout=5, step=0.02, what="the deleted post gone")
        seconds.append(time.monotonic() - started)
        assert max(seconds) < 5, seconds
        code, took = svc.stop(signal.SIGINT)
    finally:
        svc.close()
    assert code == 0 and took < 10, svc.text()
    text = svc.text()
    assert "watching 1 archive folder(s) for changes: seed-archive" in text
    assert "Traceback" not in text


def test_a_post_polled_half_written_is_stored_whole_after_its_close(tmp_path: Path) -> None:
    posts, ticker = _ticker(tmp_path, "0s")
    ticker.prepare()
    ticker.tick()
    write_post(posts, 2)
    whole = (posts / "00002.md").read_bytes()
    with (posts / "00002.md").open("wb") as fh:  # the created event's poll comes while the writer is halfway
        fh.write(whole[: len(whole) // 3])
        fh.flush()
        ticker.hint("seed-archive", "00002.md")
        ticker.tick()
        fh.write(whole[len(whole) // 3 :])
    ticker.hint("seed-archive", "00002.md")  # the close
    ticker.tick()
    articles = {a["source_path"]: a for a in ticker.repo.iter_articles()}
    assert "第2号测试新闻" in str(articles["00002.md"]["title"])
    assert ticker.repo.file_states("seed-archive")["00002.md"][0] == len(whole)
    assert "第4段" in str(articles["00002.md"]["content_text"])  # the last paragraph: the final bytes


def test_modified_stands_in_for_closed_only_where_closes_are_not_reported(tmp_path: Path) -> None:
    from watchdog.events import FileClosedEvent, FileModifiedEvent

    root = str(tmp_path)
    post = os.path.join(root, "a.md")
    inotify, elsewhere = Hints(), Hints()
    watch._Handler("s", root, inotify).on_any_event(FileModifiedEvent(post))
    watch._Handler("s", root, elsewhere, modified=True).on_any_event(FileModifiedEvent(post))
    assert inotify.got == [] and elsewhere.got == [("s", "a.md")]
    watch._Handler("s", root, inotify).on_any_event(FileClosedEvent(post))
    assert inotify.got == [("s", "a.md")]


def test_a_post_written_while_the_service_was_stopped_shows_at_the_next_start(tmp_path: Path) -> None:
    """The watcher hears nothing while the service is stopped: a restart scans each watched folder once in
    its first tick, instead of leaving the change to the next regular poll (here an hour away)."""
    posts = tmp_path / "posts"
    posts.mkdir()
    write_post(posts, 1)
    cfg, base = service_config(tmp_path, posts, every="1h", schedule={"tick": "1s"})
    out = tmp_path / "feeds" / "all.atom"
    svc = Service(cfg)
    try:
        svc.wait_started(base)
        wait_for(lambda: out.exists() and "第1号测试新闻" in out.read_text("utf-8"), what="the first post")
        assert svc.stop(signal.SIGINT)[0] == 0
    finally:
        svc.close()
    title = write_post(posts, 2)  # while stopped
    again = Service(cfg)
    try:
        again.wait_started(base)
        wait_for(lambda: title in out.read_text("utf-8"), timeout=10, step=0.05, what="the post written meanwhile")
        assert again.stop(signal.SIGINT)[0] == 0
    finally:
        again.close()

"""Ctrl-C in a one-off sync: the first asks for a stop at the next safe point, a second stops at once."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import write_config
from service.helpers import write_post

from syndicator import forked
from syndicator import publish as publish_mod
from syndicator.cli import main
from syndicator.config import load
from syndicator.errors import Interrupted, RenderError
from syndicator.stopping import stop_on_ctrl_c
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

ANNOUNCED = "SIGINT: stopping after the current file"


def posts_config(tmp_path: Path, posts: int) -> Path:
    """A config whose archive holds ``posts`` small posts (titles 第N号测试新闻…), on a SQLite file."""
    folder = tmp_path / "posts"
    folder.mkdir()
    for n in range(1, posts + 1):
        write_post(folder, n)
    return write_config(tmp_path, folder, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")


def sync_command(config: Path) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), "sync", "--no-progress"])


def test_a_first_ctrl_c_asks_to_stop_and_a_second_one_stops_at_once(caplog: pytest.LogCaptureFixture) -> None:
    before = signal.getsignal(signal.SIGINT)
    with caplog.at_level(logging.WARNING), stop_on_ctrl_c() as stop:
        assert not stop()
        signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt: the work goes on to its next safe point
        assert stop()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert [r.getMessage() for r in caplog.records if ANNOUNCED in r.getMessage()] == [
        "SIGINT: stopping after the current file (Ctrl-C again stops at once)"]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_forked_copy_goes_on_after_the_first_ctrl_c_and_leaves_the_announcement_to_its_parent(
        caplog: pytest.LogCaptureFixture) -> None:
    """The terminal sends Ctrl-C to the whole process group, the render's forked copy included."""
    assert forked.available(), f"threads left running by earlier tests: {threading.enumerate()}"
    with caplog.at_level(logging.WARNING), stop_on_ctrl_c() as stop:

        def once() -> int:
            signal.raise_signal(signal.SIGINT)
            return 100 * stop() + sum(ANNOUNCED in r.getMessage() for r in caplog.records)

        assert forked.start(once, "the copy").result() == 100  # flag set in the copy, nothing said there

        def twice() -> int:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            return 1

        with pytest.raises(RenderError, match="the copy failed: KeyboardInterrupt"):
            forked.start(twice, "the copy").result()
        assert not stop()


def test_a_stop_asked_after_the_last_source_skips_the_render_and_the_next_sync_renders_everything(
        tmp_path: Path) -> None:
    settings = load(posts_config(tmp_path, 3))
    repo = Repository(open_database(settings.database.url))
    asked = False

    def stop() -> bool:  # turns true once the source is done: the files were all stored before it
        return asked

    def progress(_name: str, done: int, _total: int | None = None) -> None:
        nonlocal asked
        asked = done == 3

    with pytest.raises(Interrupted, match="stopped before the render"):
        sync(settings, repo, stop=stop, progress=progress)
    assert repo.counts()["articles"] == 3
    assert not (settings.output.dir / "all.atom").exists()

    report, _ = sync(settings, repo)
    assert report.sources[0].new == 0 and report.feeds_written > 0
    assert "第3号测试新闻" in (settings.output.dir / "all.atom").read_text(encoding="utf-8")


def test_a_ctrl_c_during_the_render_lets_it_finish_and_says_so(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = posts_config(tmp_path, 1)
    real = publish_mod.publish

    def ctrl_c_then_publish(*args: object, **kwargs: object) -> int:
        signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(publish_mod, "publish", ctrl_c_then_publish)
    done = sync_command(config)
    assert done.exit_code == 0, done.output
    assert "sync: sources=1 new=1 " in done.output  # it finished: the summary, and exit 0
    assert "第1号测试新闻" in (tmp_path / "feeds" / "all.atom").read_text(encoding="utf-8")
    assert done.output.count("SIGINT: stopping") == 1
    assert "SIGINT: stopping once the render that has begun is done (Ctrl-C again stops at once)" in done.output


def test_a_second_ctrl_c_stops_a_sync_at_once_with_the_exit_code_of_a_stopped_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = posts_config(tmp_path, 1)

    def ctrl_c_twice(*_args: object, **_kwargs: object) -> int:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        return 0

    monkeypatch.setattr(publish_mod, "publish", ctrl_c_twice)
    done = sync_command(config)
    assert done.exit_code == 130, done.output
    assert "sync: stopped at once (Ctrl-C)" in done.output
    assert not (tmp_path / "feeds" / "all.atom").exists()
    monkeypatch.undo()
    done = sync_command(config)
    assert done.exit_code == 0 and "第1号测试新闻" in (tmp_path / "feeds" / "all.atom").read_text(encoding="utf-8")


def test_a_sync_started_with_ctrl_c_ignored_keeps_ignoring_it() -> None:
    """A shell starts background jobs (`syndicator sync &` in a script) with SIGINT ignored: a Ctrl-C meant
    for the foreground must not stop them, as Python itself leaves such a SIGINT ignored."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_ctrl_c() as stop:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            assert not stop()
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)

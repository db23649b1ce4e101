"""Writers and pruners racing in one output folder (several syncs/renders at once, or a crash's leftovers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from syndicator import recovery
from syndicator.render.write import STALE_TEMP_SECONDS, TEMP_PREFIX, prune, write_if_changed


def test_prune_leaves_a_live_writers_temporary_file_alone(tmp_path: Path) -> None:
    write_if_changed(tmp_path, "tags/a.atom", b"x")
    live = tmp_path / "tags" / f"{TEMP_PREFIX}live.part"
    live.write_bytes(b"half")  # another process is writing it right now
    dead = tmp_path / "tags" / f"{TEMP_PREFIX}dead.part"
    dead.write_bytes(b"half")
    old = time.time() - STALE_TEMP_SECONDS - 5
    os.utime(dead, (old, old))
    assert prune(tmp_path, {"tags/a.atom"}, "tags") == ["tags/.syndicator-tmp-dead.part"]
    assert live.exists()


def test_prune_keeps_files_written_after_the_keep_list_was_made(tmp_path: Path) -> None:
    started = time.time()
    write_if_changed(tmp_path, "articles/old.html", b"x")
    os.utime(tmp_path / "articles" / "old.html", (started - 60, started - 60))
    write_if_changed(tmp_path, "articles/new.html", b"x")  # a concurrent sync's new story
    assert prune(tmp_path, set(), "articles", keep_newer_than=started) == ["articles/old.html"]
    assert (tmp_path / "articles" / "new.html").exists()


def test_a_folder_pruned_away_under_a_writer_is_made_again(tmp_path: Path) -> None:
    import tempfile

    real = tempfile.mkstemp
    calls = []

    def racing_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        if not calls:
            calls.append(1)
            (tmp_path / "tags").rmdir()  # a pruner removed the (empty) folder between mkdir and mkstemp
        return real(*args, **kwargs)  # type: ignore[arg-type]

    tempfile.mkstemp = racing_mkstemp  # type: ignore[assignment]
    try:
        assert write_if_changed(tmp_path, "tags/x.atom", b"data")
    finally:
        tempfile.mkstemp = real
    assert (tmp_path / "tags" / "x.atom").read_bytes() == b"data"


def test_recovery_marker_of_a_dead_writer_forces_a_full_render_once(tmp_path: Path) -> None:
    first = recovery.begin(tmp_path)
    assert not first.recovering
    second = recovery.begin(tmp_path)  # the first is alive: not stale
    assert not second.recovering
    second.finish()
    first.__del__()  # the process died: its lock is gone, its marker stays
    third = recovery.begin(tmp_path)
    assert third.recovering
    leftover = tmp_path / f"{TEMP_PREFIX}crashed.part"
    leftover.write_bytes(b"half")
    old = time.time() - 5
    os.utime(leftover, (old, old))
    third.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not recovery.begin(tmp_path).recovering


def test_a_render_never_puts_back_older_outputs_than_a_sync_that_finished_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`render` reads the database, a `sync` stores a new post and writes its feeds, then the render writes.

    Found by the final check of ``test_concurrency.py``: the render wrote the feeds of what it had read, older
    than the files the sync had just written, and nothing rewrote them until the next change. `render` now
    takes the writer's turn like `sync` (the sync waits for it, then writes the newer feeds).
    """
    from click.testing import CliRunner
    from conftest import write_config

    from syndicator.cli import main
    from syndicator.storage.repo import Repository

    from .posts import write_posts

    archive = tmp_path / "archive"
    write_posts(archive, 12)
    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'var' / 'syndicator.db'}")
    runner = CliRunner()
    first = runner.invoke(main, ["--config", str(config), "-q", "sync", "--no-progress"])
    assert first.exit_code == 0, first.output
    write_posts(archive / "more", 1, seed=77)  # what the racing sync will add
    racing_log = tmp_path / "racing-sync.log"
    racing: list[subprocess.Popen[bytes]] = []
    real = Repository.feed_entries

    def read_then_let_a_sync_finish(self: Repository, *args: Any, **kwargs: Any) -> Any:
        entries = real(self, *args, **kwargs)  # the render has read the database
        if not racing:
            with racing_log.open("wb") as log:
                racing.append(subprocess.Popen(
                    [sys.executable, "-m", "syndicator", "--config", str(config), "sync", "--no-progress"],
                    cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 120
            # the sync stores the post and writes its feeds, or waits for the render's turn to end
            while racing[0].poll() is None and b"waiting up to" not in racing_log.read_bytes():
                assert time.monotonic() < deadline, racing_log.read_text(encoding="utf-8")
                time.sleep(0.1)
        return entries

    monkeypatch.setattr(Repository, "feed_entries", read_then_let_a_sync_finish)
    rendered = runner.invoke(main, ["--config", str(config), "render"])
    assert rendered.exit_code == 0, rendered.output
    monkeypatch.undo()
    assert racing and racing[0].wait(120) == 0, racing_log.read_text(encoding="utf-8")
    assert "new=1" in racing_log.read_text(encoding="utf-8")
    again = runner.invoke(main, ["--config", str(config), "render"])
    assert "render: 0 files written" in again.output, "outputs older than the database were left behind"

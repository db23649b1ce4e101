"""Writers and pruners racing in one output folder (several syncs/renders at once, or a crash's leftovers)."""

from __future__ import annotations

import os
import time
from pathlib import Path

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

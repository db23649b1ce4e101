"""write_if_changed / prune: change-only, atomic writes and safe pruning."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from syndicator.errors import RenderError
from syndicator.render.write import SMALL_BATCH, TEMP_PREFIX, BatchWriter, prune, write_if_changed


def test_writes_then_keeps_mtime_when_equal(tmp_path: Path) -> None:
    assert write_if_changed(tmp_path, "tags/a.atom", b"one") is True
    target = tmp_path / "tags" / "a.atom"
    assert target.read_bytes() == b"one"
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    assert write_if_changed(tmp_path, "tags/a.atom", b"one") is False
    assert target.stat().st_mtime_ns == 1_000_000_000
    assert write_if_changed(tmp_path, "tags/a.atom", b"two") is True
    assert target.read_bytes() == b"two"
    assert target.stat().st_mtime_ns != 1_000_000_000
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in target.parent.iterdir()] == ["a.atom"]  # no temp file left behind


def test_replacement_is_atomic(tmp_path: Path) -> None:
    """A concurrent reader only ever sees one complete version."""
    a, b = b"A" * 300_000, b"B" * 400_000
    write_if_changed(tmp_path, "all.atom", a)
    target = tmp_path / "all.atom"
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            write_if_changed(tmp_path, "all.atom", b if i % 2 == 0 else a)
    finally:
        stop.set()
        thread.join()
    assert seen <= {a, b}


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_if_changed(tmp_path, "all.rss", b"old")

    def broken_replace(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(RenderError, match=r"all\.rss"):
        write_if_changed(tmp_path, "all.rss", b"new")
    assert (tmp_path / "all.rss").read_bytes() == b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("bad", ["../x.atom", "/etc/x", "a/../../x", "", "a\\b", "./a"])
def test_paths_outside_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RenderError):
        write_if_changed(tmp_path / "out", bad, b"x")


def test_prune_removes_only_stale_generated_files(tmp_path: Path) -> None:
    for rel in ("tags/a.atom", "tags/a.rss", "tags/b.atom", "tags/b.rss", "tags/old/c.html", "all.atom"):
        write_if_changed(tmp_path, rel, b"x")
    (tmp_path / "tags" / "notes.txt").write_text("mine")
    (tmp_path / "tags" / f"{TEMP_PREFIX}xyz.part").write_bytes(b"")
    os.utime(tmp_path / "tags" / f"{TEMP_PREFIX}xyz.part", (1, 1))  # left by a writer that died long ago
    removed = prune(tmp_path, {"tags/a.atom", "a.rss"}, "tags")
    assert removed == ["tags/.syndicator-tmp-xyz.part", "tags/b.atom", "tags/b.rss", "tags/old/c.html"]
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["all.atom", "tags/a.atom", "tags/a.rss", "tags/notes.txt"]
    assert not (tmp_path / "tags" / "old").exists()
    assert prune(tmp_path, set(), "missing") == []


def test_prune_does_not_follow_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.atom").write_bytes(b"x")
    out = tmp_path / "out"
    (out / "tags").mkdir(parents=True)
    (out / "tags" / "link").symlink_to(outside, target_is_directory=True)
    prune(out, set(), "tags")
    assert (outside / "keep.atom").exists()
    with pytest.raises(RenderError):
        prune(out, set(), "../outside")


# -- BatchWriter ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [3, SMALL_BATCH + 40])  # fsync per file / two filesystem syncs
def test_batch_writer_writes_only_changed_files_and_nothing_before_commit(tmp_path: Path, count: int) -> None:
    write_if_changed(tmp_path, "articles/0.html", b"page 0")
    before = (tmp_path / "articles" / "0.html").stat().st_mtime_ns
    with BatchWriter(tmp_path, window=10_000) as w:
        staged = [w.write(f"articles/{i}.html", f"page {i}".encode()) for i in range(count)]
        assert staged[0] is False and all(staged[1:])
        assert not (tmp_path / "articles" / "1.html").exists()  # invisible until commit
    assert w.written == count - 1
    assert (tmp_path / "articles" / "0.html").stat().st_mtime_ns == before
    assert all((tmp_path / "articles" / f"{i}.html").read_bytes() == f"page {i}".encode() for i in range(count))
    assert not [p for p in (tmp_path / "articles").iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_batch_writer_commits_every_window_and_discards_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), BatchWriter(tmp_path, window=4) as w:
        for i in range(6):
            w.write(f"tags/{i}.atom", b"x")
        raise RuntimeError("render failed")
    names = sorted(p.name for p in (tmp_path / "tags").iterdir())
    assert names == ["0.atom", "1.atom", "2.atom", "3.atom"]  # the first window was committed, the rest dropped


def test_batch_writer_refuses_paths_outside_the_output(tmp_path: Path) -> None:
    with pytest.raises(RenderError), BatchWriter(tmp_path) as w:
        w.write("../escape.html", b"x")


def test_batched_routes_write_if_changed_through_one_batch(tmp_path: Path) -> None:
    from syndicator.render.write import batched

    write_if_changed(tmp_path, "same.html", b"same")
    with batched(tmp_path) as writer:
        assert write_if_changed(tmp_path, "tags/a.atom", b"a") is True
        assert write_if_changed(tmp_path, "same.html", b"same") is False  # unchanged: nothing staged
        assert not (tmp_path / "tags" / "a.atom").exists()  # visible only when the batch commits
        with batched(tmp_path) as inner:  # nested: the same batch
            assert inner is writer
            write_if_changed(tmp_path, "b.html", b"b")
        assert not (tmp_path / "b.html").exists()
    assert (tmp_path / "tags" / "a.atom").read_bytes() == b"a" and (tmp_path / "b.html").read_bytes() == b"b"
    assert writer.written == 2
    assert write_if_changed(tmp_path, "c.html", b"c") is True and (tmp_path / "c.html").exists()  # batch over


def test_batched_discards_on_error_and_other_threads_write_directly(tmp_path: Path) -> None:
    from syndicator.render.write import batched

    other: list[bool] = []
    with pytest.raises(RuntimeError), batched(tmp_path):
        write_if_changed(tmp_path, "a.html", b"a")
        t = threading.Thread(target=lambda: other.append(write_if_changed(tmp_path, "t.html", b"t")))
        t.start()
        t.join()
        assert (tmp_path / "t.html").exists()  # another thread is not part of this batch
        raise RuntimeError("boom")
    assert other == [True]
    assert not (tmp_path / "a.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_large_batch_syncs_without_starting_a_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch over SMALL_BATCH files ends with syncfs(2): reached through libc directly, never by starting a
    program (``ctypes.util.find_library`` runs ``ldconfig`` — a fork of a process of hundreds of MB, twice
    per 2,000 files, which the benchmark saw as a doubled peak memory)."""
    import subprocess

    def no_process(*_a: object, **_k: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    monkeypatch.setattr(os, "fork", no_process)
    writer = BatchWriter(tmp_path)
    for i in range(SMALL_BATCH + 1):
        writer.write(f"articles/{i}.html", b"page %d" % i)
    writer.commit()
    assert sorted(p.name for p in (tmp_path / "articles").iterdir()) == sorted(f"{i}.html" for i in range(SMALL_BATCH + 1))

"""Broken files in an archive: each is skipped with a reason, and the rest syncs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_config

from syndicator.cli import main
from syndicator.config import load
from syndicator.sources import archive
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

from .test_hostile import TEXT, articles, post


def good(arch: Path, n: int) -> None:
    (arch / f"good-{n:03d}.md").write_text(post(f"正常新闻{n}", f"{TEXT}第{n}条。"), encoding="utf-8")


@contextlib.contextmanager
def without_read_rights() -> Iterator[None]:
    """Run the block as a user who may not read 0o000 files (root may read anything)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_bad_files_are_skipped_with_a_reason_and_the_rest_syncs(tmp_path: Path) -> None:
    arch = tmp_path / "archive"
    arch.mkdir()
    good(arch, 1)
    (arch / "binary.md").write_bytes(bytes(range(256)) * 40)
    (arch / "nul.md").write_bytes(post("有NUL", TEXT).encode() + b"\x00")
    (arch / "empty.md").write_bytes(b"")
    (arch / "blank.md").write_bytes(b"   \n\n\t\n")
    (arch / "loop-a.md").symlink_to(arch / "loop-b.md")
    (arch / "loop-b.md").symlink_to(arch / "loop-a.md")
    (arch / "dangling.md").symlink_to(arch / "nowhere.md")
    (arch / "dir.md").mkdir()  # a folder with a post's name: walked into, not read
    os.mkfifo(arch / "fifo.md")  # opening it would block for ever
    (arch / os.fsdecode(b"latin1-\xe9\xe8.md")).write_text(post("文件名不是UTF-8", TEXT + "名字"), encoding="utf-8")
    (arch / "sub").mkdir()
    (arch / "sub" / "self").symlink_to(arch / "sub")  # a folder loop
    good(arch / "sub", 2)
    config = write_config(tmp_path, arch)
    result = CliRunner().invoke(main, ["--config", str(config), "sync", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 1, result.stderr
    err = result.stderr
    for name, reason in [("binary.md", "binary file"), ("nul.md", "binary file"), ("empty.md", "empty file"),
                         ("blank.md", "empty file"), ("loop-a.md", "Too many levels of symbolic links"),
                         ("dangling.md", "No such file or directory"), ("fifo.md", "not a regular file")]:
        assert f"{name}: skipped: {reason}" in err, (name, err)
    titles = sorted(str(r["title"]) for r in articles(config))
    assert titles == ["文件名不是UTF-8", "正常新闻1", "正常新闻2"]
    assert "new=3" in result.stdout and "skipped=8" in result.stdout
    paths = {str(r["source_path"]) for r in articles(config)}
    assert "latin1-\\xe9\\xe8.md" in paths  # the bytes of the name, kept visible and storable


def test_an_unreadable_file_is_skipped_with_the_reason(tmp_path: Path) -> None:
    # a folder every user may enter (pytest's tmp_path is private to root)
    base = Path(tempfile.mkdtemp(prefix="syndicator-perm-"))
    try:
        base.chmod(0o755)
        good(base, 1)
        secret = base / "secret.md"
        secret.write_text(post("读不到", TEXT), encoding="utf-8")
        secret.chmod(0o000)
        scan, files = archive.scan("a", base, "UTC", {})
        with without_read_rights():
            read = [fr.item.key for fr in files]
        assert read == ["good-001.md"]
        assert scan.errors == [("secret.md", "Permission denied")]
    finally:
        secret.chmod(0o644)
        for p in base.iterdir():
            p.unlink()
        base.rmdir()


def test_a_file_that_disappears_during_the_sync_is_skipped_and_the_rest_syncs(tmp_path: Path) -> None:
    arch = tmp_path / "archive"
    arch.mkdir()
    for n in range(120):
        good(arch, n)
    config = write_config(tmp_path, arch)
    settings = load(config)
    repo = Repository(open_database(settings.database.url))
    gone = arch / "good-110.md"
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("dir_fd") is not None and path == "good-000.md":  # the first file read: the folder is
            gone.unlink()  # listed (sorted) already, this one not read yet (files are read ahead for workers)
        return real_stat(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "stat", stat)
        report, _ = sync(settings, repo)
    src = report.sources[0]
    assert src.new == 119 and src.skipped == 1
    assert src.errors == ["good-110.md: No such file or directory"]
    # the next sync sees it gone for good: nothing to withdraw (it was never stored), no error
    report, _ = sync(settings, repo)
    assert report.errors == 0 and report.sources[0].new == 0


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097])
def test_tiny_and_boundary_sized_files_never_crash_the_scan(tmp_path: Path, size: int) -> None:
    (tmp_path / "x.md").write_bytes(b"a" * size)
    scan, files = archive.scan("a", tmp_path, "UTC", {})
    assert len(list(files)) == 1 and not scan.errors

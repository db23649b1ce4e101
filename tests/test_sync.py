"""sync.py: what a sync tells its progress bar."""

from __future__ import annotations

from pathlib import Path

from conftest import write_config
from service.helpers import write_post

from syndicator.config import load
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync


def _progress_of(config: Path, **kwargs: object) -> list[tuple[str, int, int | None]]:
    settings = load(config)
    repo = Repository(open_database(settings.database.url))
    calls: list[tuple[str, int, int | None]] = []

    def progress(source: str, done: int, total: int | None = None) -> None:
        calls.append((source, done, total))

    sync(settings, repo, progress=progress, **kwargs)  # type: ignore[arg-type]
    return calls


def test_a_first_or_full_sync_tells_how_many_files_it_reads_and_an_incremental_one_does_not(tmp_path: Path) -> None:
    folder = tmp_path / "posts"
    folder.mkdir()
    for n in range(1, 121):
        write_post(folder, n)
    (folder / "index.json").write_text("{}", encoding="utf-8")  # not counted: the scan skips it too
    config = write_config(tmp_path, folder, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")

    first = _progress_of(config)
    assert [done for _, done, _ in first] == [50, 100, 120]
    assert {total for _, _, total in first} == {120}, first  # a bar: every file is read

    write_post(folder, 121)
    again = _progress_of(config)  # what changed is known only once scanned: a count, no total
    assert again and {total for _, _, total in again} == {None} and again[-1][1] == 1

    full = _progress_of(config, full=True)
    assert full[-1] == (full[-1][0], 121, 121)

"""A first sync stores without the band key index and builds it at the end (``Repository.bulk_index``).

It must decide exactly what a sync with the index decides, leave the index in place whatever happens (an
error, a stop, a kill), and give way to the index when another writer indexes articles meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import write_config
from sqlalchemy import Engine, text
from test_batch_store import POSTS, QUERIES

from syndicator import clock, sync
from syndicator.config import Settings, load
from syndicator.errors import Interrupted
from syndicator.storage.engine import open_database
from syndicator.storage.repo import FileState, ItemChange, Repository
from syndicator.types import Article

BATCH = 37  # several batches, so look-ups meet both the map (earlier batches) and the batch itself
INDEX = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'ix_article_bands_key'"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sync, "BATCH", BATCH)
    clock.set_now(lambda: datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
    yield
    clock.set_now(None)


@pytest.fixture(scope="module")
def posts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench.generate import generate  # test_batch_store puts bench/ on the path

    return generate(tmp_path_factory.mktemp("archive"), POSTS, seed=11)


def open_repo(folder: Path, posts: Path) -> tuple[Settings, Repository]:
    folder.mkdir(exist_ok=True)
    settings = load(write_config(folder, posts, db_url=f"sqlite:///{folder / 'db.sqlite'}"))
    return settings, Repository(open_database(settings.database.url))


def tables(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(text(q))] for name, q in QUERIES.items()}


def index_sql(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text(INDEX)).scalar()


@contextlib.contextmanager
def no_bulk(self: Repository) -> Iterator[bool]:
    yield False


def test_a_first_sync_decides_as_with_the_index(tmp_path: Path, posts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, repo = open_repo(tmp_path / "bulk", posts)
    indexed_sql = index_sql(repo.engine)
    modes: list[bool] = []
    real = Repository.bulk_index

    @contextlib.contextmanager
    def spying(self: Repository) -> Iterator[bool]:
        with real(self) as on:
            modes.append(on)
            assert index_sql(self.engine) is None if on else True  # the index is really gone meanwhile
            yield on

    monkeypatch.setattr(Repository, "bulk_index", spying)
    report, _ = sync.sync(settings, repo, render=False)
    assert modes == [True]
    assert report.total("duplicates") > 10
    assert index_sql(repo.engine) == indexed_sql  # built again, the same definition
    bulk = tables(repo.engine)

    monkeypatch.setattr(Repository, "bulk_index", no_bulk)
    settings, plain = open_repo(tmp_path / "plain", posts)
    sync.sync(settings, plain, render=False)
    assert tables(plain.engine) == bulk

    monkeypatch.setattr(Repository, "bulk_index", spying)
    sync.sync(settings, repo, render=False, full=True)  # articles indexed now: the index is kept and used
    assert modes == [True, False]
    assert tables(repo.engine) == bulk


def test_the_index_is_built_after_a_stop_and_after_a_kill(tmp_path: Path, posts: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    settings, repo = open_repo(tmp_path / "stopped", posts)
    monkeypatch.setattr("syndicator.storage.repo._SAY_INDEXING", 2)  # what a stop waits for is logged first
    saved = 0
    real_save = Repository.save_batch

    def counting(self: Repository, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal saved
        saved += 1
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Repository, "save_batch", counting)
    with caplog.at_level(logging.INFO, "syndicator.storage.repo"), pytest.raises(Interrupted):
        sync.sync(settings, repo, render=False, stop=lambda: saved >= 2)
    assert [r.getMessage() for r in caplog.records if "near-duplicate index of" in r.getMessage()] == [
        f"building the near-duplicate index of {len(tables(repo.engine)['articles'])} articles"]
    assert index_sql(repo.engine) is not None
    assert tables(repo.engine)["bands"]  # the stored batches' rows were written at the end

    # a process killed in bulk mode leaves no index, and the articles it stored without their rows: the next
    # sync indexes them and builds the index before anything else
    settings, killed = open_repo(tmp_path / "killed", posts)
    saved = 0
    monkeypatch.setattr(Repository, "_end_bulk", lambda self: setattr(self, "_bulk", None))  # never ran
    with pytest.raises(Interrupted):
        sync.sync(settings, killed, render=False, stop=lambda: saved >= 2)
    monkeypatch.undo()
    assert index_sql(killed.engine) is None and not tables(killed.engine)["bands"]
    assert tables(killed.engine)["articles"]
    sync.sync(settings, killed, render=False)
    assert index_sql(killed.engine) is not None

    settings, stopped = open_repo(tmp_path / "stopped", posts)
    sync.sync(settings, stopped, render=False)  # the stopped one, finished

    monkeypatch.setattr(Repository, "bulk_index", no_bulk)
    settings, plain = open_repo(tmp_path / "plain", posts)
    sync.sync(settings, plain, render=False)
    assert tables(plain.engine) == tables(stopped.engine) == tables(killed.engine)


def test_ctrl_c_in_a_first_sync_leaves_the_index_to_the_next_one(tmp_path: Path, posts: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C raises KeyboardInterrupt wherever the sync is, perhaps inside a write whose transaction SQLite
    still holds open: writing the index on the way out waited for that lock for the whole busy timeout (60 s),
    then gave up with a warning. The sync now ends at once, as a killed one, and the next sync builds it."""
    settings, repo = open_repo(tmp_path / "ctrl-c", posts)
    real_save = Repository.save_batch
    saved = 0
    held: list[sqlite3.Connection] = []

    def interrupted(self: Repository, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal saved
        saved += 1
        if saved == 3:
            # the write Ctrl-C broke into, its transaction still open
            held.append(sqlite3.connect(tmp_path / "ctrl-c" / "db.sqlite", isolation_level=None))
            held[0].execute("BEGIN IMMEDIATE")
            raise KeyboardInterrupt
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Repository, "save_batch", interrupted)
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sync.sync(settings, repo, render=False)
    assert time.monotonic() - began < 30
    held[0].rollback()
    held[0].close()
    assert index_sql(repo.engine) is None and tables(repo.engine)["articles"]
    monkeypatch.undo()
    sync.sync(settings, repo, render=False)
    assert index_sql(repo.engine) is not None

    monkeypatch.setattr(Repository, "bulk_index", no_bulk)
    settings, plain = open_repo(tmp_path / "plain", posts)
    sync.sync(settings, plain, render=False)
    assert tables(plain.engine) == tables(repo.engine)


def near_copy(a: Article) -> Article:
    text_ = a.content_text + "。本报记者另有补充报道。"
    return replace(a, id="f" * 16, key="elsewhere.md", content_text=text_, content_html=f"<p>{text_}</p>",
                   content_hash="0" * 64, link=None, source="other")


def test_another_writer_ends_bulk_mode(tmp_path: Path, posts: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """An article indexed by another process during a bulk sync is found by the batches after it."""
    chosen: list[str] = []

    def run(folder: Path) -> dict[str, list[tuple[object, ...]]]:
        settings, repo = open_repo(folder, posts)
        writer = Repository(open_database(settings.database.url))
        writer.ensure_source("other", "archive", "/elsewhere")
        real_save = Repository.save_batch
        calls = 0

        def interleaved(self: Repository, source: str, changes, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal calls
            if self is repo:
                calls += 1
            if calls == 2 and self is repo:  # our second batch: a near copy of one of its articles comes first
                article = max((c.article for c in changes if c.article is not None), key=lambda a: len(a.content_text))
                chosen.append(article.id)
                real_save(writer, "other", [ItemChange("elsewhere.md", FileState(1, 1, "x"), near_copy(article))])
            return real_save(self, source, changes, *args, **kwargs)

        monkeypatch.setattr(Repository, "save_batch", interleaved)
        try:
            sync.sync(settings, repo, render=False)
        finally:
            monkeypatch.setattr(Repository, "save_batch", real_save)
        return tables(repo.engine)

    with caplog.at_level(logging.INFO, logger="syndicator.storage.repo"):
        bulk = run(tmp_path / "bulk")
    assert "indexed by another process" in caplog.text
    assert index_sql(open_database(f"sqlite:///{tmp_path / 'bulk' / 'db.sqlite'}")) is not None
    monkeypatch.setattr(Repository, "bulk_index", no_bulk)
    plain = run(tmp_path / "plain")
    assert bulk == plain
    assert chosen[0] == chosen[1]
    story_of = {row[0]: row[1] for row in bulk["articles"]}
    assert story_of[chosen[0]] == story_of["f" * 16]  # the near copy was found through the index


def test_a_batch_without_articles_does_not_hide_another_writer(tmp_path: Path, posts: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of file states only (no article) must not take another writer's rows for this sync's own."""
    seen: list[ItemChange] = []
    real_save = Repository.save_batch

    def collecting(self: Repository, source: str, changes, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(c for c in changes if c.article is not None)
        return real_save(self, source, changes, *args, **kwargs)

    monkeypatch.setattr(Repository, "save_batch", collecting)
    settings, probe = open_repo(tmp_path / "probe", posts)
    sync.sync(settings, probe, render=False)
    monkeypatch.setattr(Repository, "save_batch", real_save)
    article = max((c.article for c in seen if c.article is not None), key=lambda a: len(a.content_text))

    settings, repo = open_repo(tmp_path / "bulk", posts)
    writer = Repository(open_database(settings.database.url))
    for r in (repo, writer):
        r.ensure_source("seed-archive", "archive", str(posts))
        r.ensure_source("other", "archive", "/elsewhere")
    with repo.bulk_index() as on:
        assert on
        repo.save_batch("seed-archive", [seen[0]])
        writer.save_batch("other", [ItemChange("elsewhere.md", FileState(1, 1, "x"), near_copy(article))])
        repo.save_batch("seed-archive", [ItemChange("touched.md", FileState(2, 2, "y"))])  # file states only
        repo.save_batch("seed-archive", [ItemChange(article.key, FileState(3, 3, "z"), article)])
    story_of = {row[0]: row[1] for row in tables(repo.engine)["articles"]}
    assert story_of[article.id] == story_of["f" * 16]


def test_a_failing_index_build_does_not_hide_the_syncs_own_error(tmp_path: Path, posts: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The index is built after a failed sync too; when that fails as well (a full disk), the sync's error is
    what the caller sees, and the next sync builds the index."""
    from sqlalchemy.exc import OperationalError

    settings, repo = open_repo(tmp_path / "full-disk", posts)
    real = Repository._ensure_band_index
    calls = 0

    def failing_at_the_end(s, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls > 1:  # the first call is bulk_index's own check, before the sync
            raise OperationalError("CREATE INDEX", {}, Exception("database or disk is full"))
        return real(s, **kwargs)

    monkeypatch.setattr(Repository, "_ensure_band_index", staticmethod(failing_at_the_end))
    with caplog.at_level(logging.WARNING, logger="syndicator.storage.repo"), pytest.raises(Interrupted):
        sync.sync(settings, repo, render=False, stop=lambda: True)
    assert "could not be built (database or disk is full)" in caplog.text
    assert index_sql(repo.engine) is None
    monkeypatch.setattr(Repository, "_ensure_band_index", staticmethod(real))
    sync.sync(settings, repo, render=False)
    assert index_sql(repo.engine) is not None


def test_a_first_sync_that_renders_builds_the_index_in_its_forked_copy(
        tmp_path: Path, posts: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """With a render to do, a sync leaves bulk mode before it, and the render's forked copy writes the rows and
    builds the index before its story pages: the database ends as with both done before the render. When that
    fails it is a warning (every output is written), and the next sync builds the index."""
    from syndicator import forked

    pids: list[int] = []
    real_write = Repository._write_bulk

    def writing(self: Repository, bulk) -> None:  # type: ignore[no-untyped-def]
        pids.append(os.getpid())
        real_write(self, bulk)

    monkeypatch.setattr(Repository, "_write_bulk", writing)
    settings, repo = open_repo(tmp_path / "forked", posts)
    report, _ = sync.sync(settings, repo)
    assert not pids  # recorded in the copy's memory: the copy did it
    assert report.feeds_written > POSTS and index_sql(repo.engine) is not None
    in_the_copy = tables(repo.engine)

    monkeypatch.setattr(forked, "available", lambda: False)  # the service: before the render, in this process
    settings, plain = open_repo(tmp_path / "in-process", posts)
    sync.sync(settings, plain)
    assert pids == [os.getpid()]
    assert tables(plain.engine) == in_the_copy

    monkeypatch.undo()
    monkeypatch.setattr(Repository, "_write_bulk", writing)
    monkeypatch.setattr(sync, "BESIDE_RENDER_MAX", POSTS // 2)  # a map too big to stay in the copy
    settings, big = open_repo(tmp_path / "big", posts)
    sync.sync(settings, big)
    assert pids == [os.getpid()] * 2  # here, at the end of bulk mode, before the render
    assert tables(big.engine) == in_the_copy

    monkeypatch.undo()

    def failing(self: Repository, bulk) -> None:  # type: ignore[no-untyped-def]
        raise OSError("No space left on device")

    monkeypatch.setattr(Repository, "_write_bulk", failing)
    settings, failed = open_repo(tmp_path / "failed", posts)
    with caplog.at_level(logging.WARNING, logger="syndicator.publish"):
        sync.sync(settings, failed)  # the copy's log goes to its stderr: read the outcome
    assert index_sql(failed.engine) is None and not tables(failed.engine)["bands"]
    assert (settings.output.dir / "all.atom").exists()
    assert sum(1 for _ in (settings.output.dir / "articles").rglob("*.html")) == len(tables(failed.engine)["stories"])
    monkeypatch.undo()
    sync.sync(settings, failed)
    assert index_sql(failed.engine) is not None
    assert tables(failed.engine) == in_the_copy

"""Workers in one process on the real PostgreSQL: claims, renders, stored outputs, slots, roles."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from conftest import CORPUS, SEED_FILE, write_config

from syndicator import config as config_mod
from syndicator.coordination import TickReport, Worker, next_slot
from syndicator.errors import ConfigError
from syndicator.publish import publish
from syndicator.render.write import detach_store
from syndicator.roles import check_role
from syndicator.storage.engine import open_database
from syndicator.storage.leases import DIGEST, POLL, RENDER
from syndicator.storage.outputs import DbOutputStore
from syndicator.storage.repo import Repository

pytestmark = pytest.mark.postgres


def corpus_posts(n: int, skip: int = 0) -> list[Path]:
    if not (CORPUS / "posts").is_dir():
        return [SEED_FILE]
    return sorted((CORPUS / "posts").glob("*.md"))[skip : skip + n]


def make_sources(tmp_path: Path, count: int, per_source: int, every: str = "1h") -> list[dict[str, object]]:
    sources = []
    for i in range(count):
        folder = tmp_path / f"src{i:02d}"
        folder.mkdir()
        for post in corpus_posts(per_source, skip=i * per_source):
            shutil.copy2(post, folder / post.name)
        sources.append({"name": f"src{i:02d}", "type": "archive", "path": str(folder), "timezone": "Asia/Shanghai",
                        "every": every})
    return sources


def load(tmp_path: Path, pg_url: str, sources: list[dict[str, object]], **extra: object) -> config_mod.Settings:
    path = write_config(tmp_path, tmp_path / "src00", db_url=pg_url, **extra)
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sources"] = sources
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return config_mod.load(path)


def polls_due_now(w: Worker) -> None:
    """Make every poll due (registration spreads first polls over up to a minute)."""
    from sqlalchemy import text

    with w.leases.engine.begin() as conn:
        conn.execute(text("UPDATE leases SET due_at = timezone('UTC', now()) - interval '1 second' "
                          "WHERE kind = 'poll'"))


def test_next_slot_keeps_the_grid_and_coalesces_missed_slots() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_slot(t0, 2, t0 + timedelta(seconds=0.5)) == t0 + timedelta(seconds=2)
    # the poll ran past the next slot: that slot is still polled, at once (late)
    assert next_slot(t0, 2, t0 + timedelta(seconds=2)) == t0 + timedelta(seconds=2)
    assert next_slot(t0, 2, t0 + timedelta(seconds=3.9)) == t0 + timedelta(seconds=2)
    # it ran past three: the latest is polled at once, the two before it are skipped
    assert next_slot(t0, 2, t0 + timedelta(seconds=7.1)) == t0 + timedelta(seconds=6)


def test_roles_are_refused_on_sqlite(tmp_path: Path, archive: Path) -> None:
    settings = config_mod.load(write_config(tmp_path, archive))
    for role in ("worker", "web"):
        with pytest.raises(ConfigError, match="needs PostgreSQL"):
            check_role(settings, role)
    check_role(settings, "all")
    with pytest.raises(ConfigError, match="unknown role"):
        check_role(settings, "leader")


def test_two_workers_share_polls_and_render_once(tmp_path: Path, pg_url: str) -> None:
    settings = load(tmp_path, pg_url, make_sources(tmp_path, 4, 3), cluster={"poll_batch": 1},
                    digest={"enabled": False})  # the digest job has its own test below
    repo_a = Repository(open_database(pg_url))
    repo_b = Repository(open_database(pg_url))
    a = Worker(settings, repo_a, holder="a:1")
    b = Worker(settings, repo_b, holder="b:2")
    try:
        a.register()
        b.register()
        polls_due_now(a)
        polled: dict[str, str] = {}
        for _ in range(4):
            for w in (a, b):
                for lease in w.leases.claim(POLL, limit=1):
                    assert lease.key not in polled, "a source was polled twice in one slot"
                    polled[lease.key] = w.holder
                    report = TickReport()
                    w._poll(lease, report)
                    assert report.polls == 1
        assert sorted(polled) == ["src00", "src01", "src02", "src03"]
        assert set(polled.values()) == {"a:1", "b:2"}
        rows = a.leases.rows(POLL)
        assert all(r.holder is None and r.due_at is not None and r.due_at > a.leases.now() for r in rows)
        # every batch asked for its renders in its own transaction: they are due now, once each
        due = [r for r in a.leases.rows(RENDER) if r.due_at is not None]
        assert {"feed:all", "site"} <= {r.key for r in due}
        report_b = b.tick()
        assert report_b.renders == len(due) and report_b.polls == 0
        assert a.tick().renders == 0  # nothing left: rendered once, not once per worker
        store = DbOutputStore(repo_a.engine)
        stored = store.all_etags()
        assert {"all.atom", "all.rss", "index.html", "feeds.opml"} <= set(stored)
        assert any(p.startswith("articles/") for p in stored) and any(p.startswith("tags/") for p in stored)
        # the files a worker wrote are the stored bytes
        out = settings.output.dir
        for rel in stored:
            got = store.get(rel)
            assert got is not None and (out / rel).read_bytes() == got.data
        # and a full render from the same database changes nothing: claimed renders missed no output
        detach_store(out)
        full = settings.model_copy(update={"output": settings.output.model_copy(update={"dir": tmp_path / "full"})})
        publish(full, Repository(repo_a.engine), changes=None)
        for path in (tmp_path / "full").rglob("*"):
            if path.is_file():
                rel = path.relative_to(tmp_path / "full").as_posix()
                assert store.get(rel) is not None and store.get(rel).data == path.read_bytes(), rel  # type: ignore[union-attr]
        assert set(store.all_etags()) == {p.relative_to(tmp_path / "full").as_posix()
                                          for p in (tmp_path / "full").rglob("*") if p.is_file()}
    finally:
        a.close()
        b.close()
        detach_store(settings.output.dir)
        detach_store(tmp_path / "full")
        repo_a.engine.dispose()
        repo_b.engine.dispose()


def test_withdrawn_story_and_emptied_tag_leave_the_store(tmp_path: Path, pg_url: str) -> None:
    sources = make_sources(tmp_path, 1, 2)
    settings = load(tmp_path, pg_url, sources)
    repo = Repository(open_database(pg_url))
    w = Worker(settings, repo, holder="w:1")
    try:
        w.register()
        polls_due_now(w)
        assert w.tick().polls == 1
        w.tick()
        store = DbOutputStore(repo.engine)
        pages = [p for p in store.all_etags() if p.startswith("articles/")]
        assert pages
        for f in Path(str(sources[0]["path"])).iterdir():
            f.unlink()
        polls_due_now(w)
        assert w.tick().polls == 1
        w.tick()
        left = store.all_etags()
        assert not [p for p in left if p.startswith("articles/")]
        assert not [p for p in left if p.startswith("tags/")]
        assert not list((settings.output.dir / "articles").glob("*.html"))
    finally:
        w.close()
        detach_store(settings.output.dir)
        repo.engine.dispose()


def test_digest_of_a_day_is_built_once(tmp_path: Path, pg_url: str) -> None:
    settings = load(tmp_path, pg_url, make_sources(tmp_path, 1, 1))
    built: list[tuple[str, date]] = []
    workers = []
    for i in range(3):
        repo = Repository(open_database(pg_url))
        workers.append(Worker(settings, repo, holder=f"w:{i}", digest=lambda d, i=i: built.append((f"w:{i}", d)),
                              digest_at=time(0, 0)))
    try:
        for _ in range(3):
            for w in workers:
                w.tick()
        assert len(built) == 1
        [row] = workers[0].leases.rows(DIGEST)
        assert row.due_at is None and row.done_by == built[0][0]
    finally:
        for w in workers:
            w.close()
            w.repo.engine.dispose()
        detach_store(settings.output.dir)


def test_cli_run_role_refused_on_sqlite(tmp_path: Path, archive: Path) -> None:
    import subprocess
    import sys

    cfg = write_config(tmp_path, archive)
    for role in ("worker", "web"):
        r = subprocess.run([sys.executable, "-m", "syndicator", "--config", str(cfg), "run", "--role", role],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "needs PostgreSQL" in r.stderr and "database.url" in r.stderr


def test_cli_run_role_web_serves_and_stops(tmp_path: Path, archive: Path, pg_url: str) -> None:
    import http.client
    import signal
    import socket
    import subprocess
    import sys
    import time as time_mod

    from syndicator.sync import sync

    cfg = write_config(tmp_path, archive, db_url=pg_url)
    settings = config_mod.load(cfg)
    repo = Repository(open_database(pg_url))
    sync(settings, repo)  # a single process on PostgreSQL stores its outputs for web nodes too
    detach_store(settings.output.dir)
    expected = DbOutputStore(repo.engine).get("all.atom")
    repo.engine.dispose()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "syndicator", "--config", str(cfg), "run", "--role", "web",
                             "--host", "127.0.0.1", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time_mod.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/all.atom")
                resp = conn.getresponse()
                body = resp.read()
                break
            except OSError:
                assert time_mod.monotonic() < deadline, "the web node never answered"
                time_mod.sleep(0.2)
        assert expected is not None and resp.status == 200
        assert body == expected.data and resp.getheader("ETag") == expected.etag
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_worker_refuses_beside_a_single_process_service(tmp_path: Path, pg_url: str) -> None:
    import threading

    from syndicator.errors import LockHeld
    from syndicator.roles import run_worker
    from syndicator.storage import locks

    settings = load(tmp_path, pg_url, make_sources(tmp_path, 1, 1))
    engine = open_database(pg_url)
    with locks.acquire(engine, locks.RUN_LOCK):  # what `syndicator run` (role all) holds while it runs
        with pytest.raises(LockHeld, match="single-process"):
            run_worker(settings, threading.Event())
    engine.dispose()
    detach_store(settings.output.dir)


def test_shell_sync_takes_the_workers_claims(tmp_path: Path, pg_url: str) -> None:
    """A `syndicator sync` beside workers waits for a source a worker is polling, and leaves it the renders it
    holds: nothing polled twice at once, nothing rendered by two processes."""
    import threading

    from syndicator.coordination import sync_by_claims, uses_claims
    from syndicator.storage import locks

    settings = load(tmp_path, pg_url, make_sources(tmp_path, 2, 2), digest={"enabled": False})
    repo = Repository(open_database(pg_url))
    shell_repo = Repository(open_database(pg_url))
    w = Worker(settings, repo, holder="w:1")
    try:
        assert not uses_claims(shell_repo)  # no worker ever ran here: a plain sync
        with locks.acquire(repo.engine, locks.RUN_LOCK, shared=True):  # what a running worker holds
            assert uses_claims(shell_repo)
        w.register()
        assert uses_claims(shell_repo)  # workers ran here (their poll rows): claims even while none runs
        w.leases.request(RENDER, ["feed:all"])
        [render_all] = w.leases.claim(RENDER, keys=["feed:all"])  # the worker is rendering all.atom …
        [polling] = w.leases.claim(POLL, keys=["src00"])  # … and polling src00
        slot = polling.due_at
        result: dict[str, object] = {}
        shell = threading.Thread(target=lambda: result.update(report=sync_by_claims(settings, shell_repo, wait=60)))
        shell.start()
        shell.join(timeout=1.5)
        assert shell.is_alive(), "the shell sync polled a source a worker was polling"
        assert shell_repo.article_keys("src00") == set()
        w._poll(polling, TickReport())  # the worker's poll ends; the shell polls src00 after it
        shell.join(timeout=120)
        assert not shell.is_alive()
        report = result["report"]
        assert [s.name for s in report.sources] == ["src00", "src01"]  # type: ignore[attr-defined]
        assert len(shell_repo.article_keys("src00")) == 2 and len(shell_repo.article_keys("src01")) == 2
        rows = {r.key: r for r in w.leases.rows(POLL)}
        assert all(r.holder is None for r in rows.values())
        assert rows["src01"].done_by and rows["src01"].done_by.endswith(":sync")
        assert rows["src00"].due_at is not None and rows["src00"].due_at > slot  # the worker's next slot, kept
        # the shell rendered what it could claim; all.atom is still the worker's (asked again: due once more)
        renders = {r.key: r for r in w.leases.rows(RENDER)}
        assert renders["feed:all"].holder == "w:1" and renders["feed:all"].due_at is not None
        assert [k for k, r in renders.items() if r.due_at is not None] == ["feed:all"]
        store = DbOutputStore(repo.engine)
        assert store.get("all.atom") is None  # nobody but its holder writes all.atom
        assert w.leases.complete(render_all, None)  # the worker's render ends: the request made meanwhile stays
        assert w.tick_renders().renders == 1
        assert store.get("all.atom") is not None
        assert not [r for r in w.leases.rows(RENDER) if r.due_at is not None]
    finally:
        w.close()
        detach_store(settings.output.dir)
        repo.engine.dispose()
        shell_repo.engine.dispose()

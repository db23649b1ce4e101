"""Crash safety, measured: a cold sync killed with SIGKILL at 20 random moments, each followed by a restart.

The same test runs on SQLite and on a fresh schema of the real PostgreSQL (a new one per round). The
generated posts are spread over three archive sources that repeat each other's stories: every source's
batches commit on their own, so kills also land between commits and stories span sources. After every kill the database is
consistent (SQLite's ``PRAGMA integrity_check``; on both: every article has its story, member counts match the
live members, one article and one source item per file, tags and versions in step, see
``databases.CONSISTENCY``) and every file a reader could fetch is complete (feeds parse with ``bozo == 0``,
pages end with ``</html>``). When the runs finally complete, the database and the output folder equal those
of one uninterrupted run: same stories, same entry ids, no duplicates, byte-identical feeds (on PostgreSQL
the outputs kept in the database too).

``SYNDICATOR_CRASH_POSTS`` sets the number of generated posts (default 2,000 on SQLite, 300 on
PostgreSQL, whose cold sync is slower), ``SYNDICATOR_CRASH_SEED`` the random moments.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from syndicator.render.write import etag_of

from .databases import Database, NewDatabase, databases
from .posts import write_posts
from .runs import finish, fresh, served, start
from .state import check_outputs, entry_ids, files

DEFAULT_POSTS = {"sqlite": 2000, "postgres": 300}  # the "few thousand" on the embedded default
POSTS_ENV = os.environ.get("SYNDICATOR_CRASH_POSTS")
KILLS = 20
DESKS = 3  # archive sources: each one commits on its own, so kills land between commits even with few posts
# a few thousand posts take minutes per uninterrupted sync: let the test's own deadline grow with them
TIMEOUT = 900 + 2 * int(POSTS_ENV or DEFAULT_POSTS["sqlite"])


def posts_for(kind: str) -> int:
    return int(POSTS_ENV) if POSTS_ENV else DEFAULT_POSTS[kind]


def write_desks(archive: Path, posts: int, desks: int) -> None:
    """``posts`` generated posts in ``desks`` subfolders, in order (later desks repeat earlier desks' stories)."""
    paths = write_posts(archive / "all", posts)
    for n, path in enumerate(paths):
        desk = archive / f"desk{n * desks // posts}"
        desk.mkdir(exist_ok=True)
        path.rename(desk / path.name)
    (archive / "all").rmdir()


def timed_reference(config: Path, db: Database, posts: int) -> tuple[float, float]:
    """The uninterrupted run: (its duration, when its last batch was committed; the render follows)."""
    began = time.monotonic()
    proc = start(config)
    stored_by = 0.0
    while proc.poll() is None:
        if not stored_by and db.committed() == posts:
            stored_by = time.monotonic() - began
        time.sleep(0.05)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    took = time.monotonic() - began
    return took, stored_by or took


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, new_database: NewDatabase) -> None:
    began = time.monotonic()
    archive = tmp_path / "archive"
    ref_config, ref_db = fresh(tmp_path / "reference", archive, new_database, DESKS)
    posts = posts_for(ref_db.kind)
    write_desks(archive, posts, DESKS)
    took, stored_by = timed_reference(ref_config, ref_db, posts)
    reference_db, reference_out = ref_db.state(), served(ref_config.parent / "feeds")
    assert len(reference_db["articles"]) == posts
    assert max(r[4] for r in reference_db["stories"]) > 1  # stories spanning desks: member counts matter
    assert not ref_db.problems()
    reference_stored = ref_db.stored_outputs()

    rng = random.Random(int(os.environ.get("SYNDICATOR_CRASH_SEED", "20")))
    kills = rounds = 0
    moments: list[float] = []
    stored: list[int] = []  # source items committed when each kill struck
    while kills < KILLS:
        rounds += 1
        config, db = fresh(tmp_path / f"round{rounds}", archive, new_database, DESKS)
        out = config.parent / "feeds"
        cold = completed = True
        while kills < KILLS:
            # the first kill of a round strikes the cold run before its last commit (start-up, migration, a
            # batch); a restart (the rest of the batches, then every output) at any moment of a cold run's
            # length, so some restarts finish and the next round begins cold again
            left = stored_by if cold else took
            cold = False
            delay = rng.uniform(0.05, left)
            proc = start(config)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills, completed = kills + 1, False
                moments.append(delay)
                stored.append(db.committed())
                problems = db.problems()
                assert not problems, f"kill {kills} at {delay:.2f}s: {problems[:5]}"
                problems = check_outputs(out)
                assert not problems, f"kill {kills} at {delay:.2f}s: {problems[:5]}"
                continue
            assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
            completed = True
            break
        if not completed:
            finish(config, TIMEOUT)  # the restart that completes the work
        assert not db.problems()
        state = db.state()
        for table, rows in reference_db.items():
            assert state[table] == rows, f"round {rounds}: table {table} differs from the uninterrupted run"
        assert entry_ids(out) == entry_ids(ref_config.parent / "feeds")
        got = served(out)
        assert sorted(got) == sorted(reference_out)
        assert got == reference_out, [k for k in got if got[k] != reference_out.get(k)][:5]
        leftovers = [k for k in files(out) if k.rsplit("/", 1)[-1].startswith(".")]
        assert not leftovers, leftovers
        outputs = db.stored_outputs()
        if outputs is not None:  # PostgreSQL keeps every output for web nodes: the same bytes as the files
            assert outputs == {k: etag_of(v) for k, v in got.items()}, sorted(set(outputs) ^ set(got))[:5]
            assert outputs == reference_stored
    print(f"\n{db.kind}: {posts} posts, uninterrupted sync {took:.1f}s (stored by {stored_by:.1f}s); {kills} kills in {rounds} rounds at "
          f"{', '.join(f'{m:.1f}' for m in sorted(moments))} s; source items committed at the kills: "
          f"{', '.join(map(str, stored))}; test {time.monotonic() - began:.0f}s")


RUN_KILLS = int(os.environ.get("SYNDICATOR_RUN_KILLS", "6"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_syndicator_run_killed_mid_tick_loses_nothing(tmp_path: Path) -> None:
    """The service (`syndicator run`): SIGKILL at random moments of its first ticks, then a clean run."""
    with databases("sqlite") as new_database:
        _run_killed_mid_tick(tmp_path, new_database)


def _run_killed_mid_tick(tmp_path: Path, new_database: NewDatabase) -> None:
    posts = int(POSTS_ENV) // 2 if POSTS_ENV else 300  # a few hundred posts already reach every phase of a tick
    archive = tmp_path / "archive"
    write_posts(archive, posts)
    ref_config, ref_db = fresh(tmp_path / "reference", archive, new_database)
    took = finish(ref_config, TIMEOUT)
    reference_out = files(ref_config.parent / "feeds")

    config, db = fresh(tmp_path / "service", archive, new_database)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["schedule"] = {"tick": "0.2s", "jitter": 0.1, "lock_wait": "60s"}
    data["sources"][0]["every"] = "1s"
    data["server"] = {"host": "127.0.0.1", "port": 0, "enabled": False}
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    out = config.parent / "feeds"

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "syndicator", "--config", str(config), "-q", "run"],
                                cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def started_by(db: Database, pid: int) -> bool:
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT holder FROM service_instances WHERE stopped_at IS NULL")).fetchall()
        return any(str(h).endswith(f":{pid}") for (h,) in rows)

    rng = random.Random(5)
    for kill in range(RUN_KILLS):
        proc = run()
        delay = rng.uniform(0.5, took * (1 - 0.7 * db.committed() / posts) + 1)
        time.sleep(delay)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not db.problems(), f"kill {kill + 1} at {delay:.1f}s: {db.problems()[:5]}"
        assert not check_outputs(out), f"kill {kill + 1} at {delay:.1f}s: {check_outputs(out)[:5]}"
    proc = run()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            got = {k: v for k, v in files(out).items() if not k.rsplit("/", 1)[-1].startswith(".")} \
                if out.exists() else {}
            if got == reference_out:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.5)
        # SIGTERM only once `run` has its handlers (it records itself after installing them): a signal during
        # start-up would be the interpreter's default, not the service's graceful stop
        while not started_by(db, proc.pid) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)  # its exit code under SIGTERM is the service tests' concern; the state is ours
    finally:
        if proc.poll() is None:
            proc.kill()
    assert got == reference_out, sorted(set(got) ^ set(reference_out))[:5]
    assert not db.problems()
    state = db.state()
    reference_db = ref_db.state()
    for table, rows in reference_db.items():
        assert state[table] == rows, f"table {table} differs from the uninterrupted run"

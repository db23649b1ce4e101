"""Crash safety, measured: a cold sync killed with SIGKILL at 20 random moments, each followed by a restart.

After every kill the SQLite file passes ``PRAGMA integrity_check`` and every file a reader could fetch is
complete (feeds parse with ``bozo == 0``, pages end with ``</html>``). When the runs finally complete, the
database and the output folder equal those of one uninterrupted run: same stories, same entry ids, no
duplicates, byte-identical feeds.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_config

from .posts import write_posts
from .state import check_outputs, db_state, entry_ids, files, integrity

POSTS = int(os.environ.get("SYNDICATOR_CRASH_POSTS", "600"))
KILLS = 20


def start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "syndicator", "--config", str(config), "-q", "sync", "--no-progress"],
        cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def finish(config: Path) -> float:
    began = time.monotonic()
    proc = start(config)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    return time.monotonic() - began


def fresh(folder: Path, archive: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return write_config(folder, archive, db_url=f"sqlite:///{folder / 'var' / 'syndicator.db'}")


def committed(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM source_items").fetchone()[0])
    except sqlite3.OperationalError:  # no tables yet
        return 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    write_posts(archive, POSTS)
    ref_config = fresh(tmp_path / "reference", archive)
    took = finish(ref_config)
    reference_db, reference_out = db_state(ref_config.parent / "var" / "syndicator.db"), files(ref_config.parent / "feeds")
    assert len(reference_db["articles"]) == POSTS

    rng = random.Random(int(os.environ.get("SYNDICATOR_CRASH_SEED", "20")))
    kills = rounds = 0
    moments: list[float] = []
    while kills < KILLS:
        rounds += 1
        config = fresh(tmp_path / f"round{rounds}", archive)
        db, out = config.parent / "var" / "syndicator.db", config.parent / "feeds"
        while kills < KILLS:
            # a moment within what is left of the work (the database part shrinks as batches commit)
            left = took * (1 - 0.7 * committed(db) / POSTS)
            delay = rng.uniform(0.05, left)
            proc = start(config)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                moments.append(delay)
                assert integrity(db) == "ok" if db.exists() else True, f"kill {kills} at {delay:.2f}s"
                problems = check_outputs(out)
                assert not problems, f"kill {kills} at {delay:.2f}s: {problems[:5]}"
                continue
            assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
            break
        finish(config)  # the restart that completes the work
        assert integrity(db) == "ok"
        state = db_state(db)
        for table, rows in reference_db.items():
            assert state[table] == rows, f"round {rounds}: table {table} differs from the uninterrupted run"
        assert entry_ids(out) == entry_ids(ref_config.parent / "feeds")
        got = {k: v for k, v in files(out).items() if not k.rsplit("/", 1)[-1].startswith(".")}
        assert sorted(got) == sorted(reference_out)
        assert got == reference_out, [k for k in got if got[k] != reference_out.get(k)][:5]
        leftovers = [k for k in files(out) if k.rsplit("/", 1)[-1].startswith(".")]
        assert not leftovers, leftovers
    print(f"\n{POSTS} posts, uninterrupted sync {took:.1f}s; {kills} kills in {rounds} rounds at "
          f"{', '.join(f'{m:.1f}' for m in sorted(moments))} s")


RUN_KILLS = int(os.environ.get("SYNDICATOR_RUN_KILLS", "6"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_syndicator_run_killed_mid_tick_loses_nothing(tmp_path: Path) -> None:
    """The service (`syndicator run`): SIGKILL at random moments of its first ticks, then a clean run."""
    import yaml

    posts = POSTS // 2
    archive = tmp_path / "archive"
    write_posts(archive, posts)
    ref_config = fresh(tmp_path / "reference", archive)
    took = finish(ref_config)
    reference_out = files(ref_config.parent / "feeds")

    config = fresh(tmp_path / "service", archive)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["schedule"] = {"tick": "0.2s", "jitter": 0.1, "lock_wait": "60s"}
    data["sources"][0]["every"] = "1s"
    data["server"] = {"host": "127.0.0.1", "port": 0, "enabled": False}
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    db, out = config.parent / "var" / "syndicator.db", config.parent / "feeds"

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "syndicator", "--config", str(config), "-q", "run"],
                                cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def started_by(db: Path, pid: int) -> bool:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
            rows = con.execute("SELECT holder FROM service_instances WHERE stopped_at IS NULL").fetchall()
        return any(str(h).endswith(f":{pid}") for (h,) in rows)

    rng = random.Random(5)
    for kill in range(RUN_KILLS):
        proc = run()
        delay = rng.uniform(0.5, took * (1 - 0.7 * committed(db) / posts) + 1)
        time.sleep(delay)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert integrity(db) == "ok" if db.exists() else True
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
    assert integrity(db) == "ok"
    state = db_state(db)
    reference_db = db_state(ref_config.parent / "var" / "syndicator.db")
    for table, rows in reference_db.items():
        assert state[table] == rows, f"table {table} differs from the uninterrupted run"

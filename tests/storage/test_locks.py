"""Cross-process locks on SQLite (flock beside the file) and PostgreSQL (advisory locks), from real processes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from syndicator.errors import LockHeld
from syndicator.storage import locks
from syndicator.storage.engine import open_database

HOLDER = """
import sys, time
from syndicator.storage import locks
from syndicator.storage.engine import open_database
lock = locks.acquire(open_database(sys.argv[1]), sys.argv[2])
print("held", flush=True)
time.sleep(float(sys.argv[3]))
"""


def _hold_in_other_process(url: str, name: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, name, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_is_refused_then_admitted(db_url: str) -> None:
    engine = open_database(db_url)
    first = locks.acquire(engine, "run")
    with pytest.raises(LockHeld):
        locks.acquire(engine, "run")
    assert locks.is_held(engine, "run")
    other = locks.acquire(engine, "sync")  # locks of other names are independent
    other.release()
    first.release()
    assert not locks.is_held(engine, "run")
    with locks.holding(engine, "run"):
        pass


def test_lock_held_by_another_process_and_freed_when_it_dies(db_url: str) -> None:
    engine = open_database(db_url)
    proc = _hold_in_other_process(db_url, "run", 30)
    try:
        with pytest.raises(LockHeld):
            locks.acquire(engine, "run")
        proc.kill()
        proc.wait(10)
        # the kernel (SQLite) or the server (PostgreSQL) frees the lock of a dead process: no stale lock
        lock = locks.acquire(engine, "run", wait=10)
        lock.release()
    finally:
        proc.kill()
        proc.wait(10)


def test_wait_takes_turns(db_url: str) -> None:
    engine = open_database(db_url)
    proc = _hold_in_other_process(db_url, "sync", 1.0)
    try:
        started = time.monotonic()
        with locks.holding(engine, "sync", wait=20):
            waited = time.monotonic() - started
        assert 0.3 < waited < 15
    finally:
        proc.wait(10)

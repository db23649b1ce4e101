"""Leases: claims with SKIP LOCKED and an expiry, on SQLite and on the real PostgreSQL, and across processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

import pytest

from syndicator.storage.engine import open_database
from syndicator.storage.leases import DIGEST, POLL, RENDER, Leases


def test_claim_complete_and_reschedule(db_url: str) -> None:
    engine = open_database(db_url)
    a = Leases(engine, "host-a:1", ttl=30)
    b = Leases(engine, "host-b:2", ttl=30)
    now = a.now()
    assert a.ensure(POLL, ["s1", "s2"], now - timedelta(seconds=1)) == 2
    assert a.ensure(POLL, ["s1"], now + timedelta(hours=1)) == 0  # an existing row keeps its schedule
    first = a.claim(POLL, limit=1)
    assert [x.key for x in first] == ["s1"] and first[0].attempts == 1 and first[0].previous_holder is None
    second = b.claim(POLL, limit=5)
    assert [x.key for x in second] == ["s2"]  # s1 is held
    assert b.claim(POLL) == []
    assert a.complete(first[0], now + timedelta(seconds=60))
    assert b.claim(POLL) == []  # s1 is no longer due
    row = {r.key: r for r in a.rows(POLL)}["s1"]
    assert row.holder is None and row.done_by == "host-a:1" and row.attempts == 0
    assert row.due_at is not None and row.due_at > now
    engine.dispose()


def test_lost_lease_cannot_complete_or_renew(db_url: str) -> None:
    engine = open_database(db_url)
    slow = Leases(engine, "slow:1", ttl=0.2)
    other = Leases(engine, "other:2", ttl=30)
    slow.ensure(DIGEST, ["2026-11-29"], slow.now())
    [held] = slow.claim(DIGEST)
    assert other.claim(DIGEST) == []
    time.sleep(0.4)
    [taken] = other.claim(DIGEST)
    assert taken.attempts == 2 and taken.previous_holder == "slow:1" and taken.token == held.token + 1
    assert slow.renew(held) is None
    assert slow.complete(held, None) is False  # the late holder changes nothing
    assert other.renew(taken) is not None
    assert other.complete(taken, None) is True
    [row] = other.rows(DIGEST)
    assert row.due_at is None and row.done_by == "other:2"
    engine.dispose()


def test_renew_keeps_the_lease(db_url: str) -> None:
    engine = open_database(db_url)
    a = Leases(engine, "a:1", ttl=0.5)
    b = Leases(engine, "b:2", ttl=30)
    a.ensure(POLL, ["x"], a.now())
    [held] = a.claim(POLL)
    for _ in range(4):
        time.sleep(0.2)
        renewed = a.renew(held)
        assert renewed is not None
        held = renewed
        assert b.claim(POLL) == []
    assert a.release(held)
    assert [x.key for x in b.claim(POLL)] == ["x"]  # released: due as it was, free at once
    engine.dispose()


def test_request_during_render_keeps_it_due(db_url: str) -> None:
    engine = open_database(db_url)
    w = Leases(engine, "w:1", ttl=30)
    w.request(RENDER, ["feed:all", "site"])
    w.request(RENDER, ["feed:all"])  # coalesces with the first request
    claimed = {x.key: x for x in w.claim(RENDER, limit=10)}
    assert set(claimed) == {"feed:all", "site"}
    w.request(RENDER, ["feed:all"])  # a change arrives while feed:all renders
    assert w.complete(claimed["feed:all"], None)
    assert w.complete(claimed["site"], None)
    again = w.claim(RENDER, limit=10)
    assert [x.key for x in again] == ["feed:all"]  # rendered once more, with the newer change
    w.request(RENDER, ["feed:all"])
    assert w.complete(again[0], None, drop=True)  # asked for again meanwhile: the row stays, due
    [last] = w.claim(RENDER, limit=10)
    assert w.complete(last, None, drop=True)
    assert w.claim(RENDER, limit=10) == []
    assert [r.key for r in w.rows(RENDER)] == ["site"]  # done one-off rows do not pile up
    engine.dispose()


def test_forget_removes_free_rows_only(db_url: str) -> None:
    engine = open_database(db_url)
    w = Leases(engine, "w:1", ttl=30)
    w.ensure(POLL, ["keep", "gone"], None)
    w.ensure(POLL, ["held"], w.now())
    assert [x.key for x in w.claim(POLL, limit=3)] == ["held"]
    assert w.forget(POLL, ["keep"]) == 1  # "held" is being worked on: it stays until it is free
    assert [r.key for r in w.rows(POLL)] == ["held", "keep"]
    engine.dispose()


# -- several real processes on the real PostgreSQL ------------------------------------------------

RACER = textwrap.dedent(
    """
    import json, sys, time, os
    from syndicator.storage.engine import open_database
    from syndicator.storage.leases import Leases
    url, kind, start, limit = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    leases = Leases(open_database(url), f"racer:{os.getpid()}", ttl=30)
    time.sleep(max(0.0, start - time.time()))
    empty = 0
    while empty < 3:
        got = leases.claim(kind, limit=limit)
        if not got:
            empty += 1
            time.sleep(0.05)
            continue
        empty = 0
        for lease in got:
            print(json.dumps({"key": lease.key, "token": lease.token}), flush=True)
            assert leases.complete(lease, None)
    """
)


@pytest.mark.postgres
def test_processes_racing_claim_each_row_once(pg_url: str) -> None:
    engine = open_database(pg_url)
    keys = [f"2026-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 21)]  # 240 rows
    Leases(engine, "setup:0").ensure(DIGEST, keys, datetime(2020, 1, 1, tzinfo=UTC))
    start = time.time() + 3
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, pg_url, DIGEST, str(start), str(limit)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for limit in (1, 2, 3, 5)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    claimed = [json.loads(line)["key"] for out, _ in outputs for line in out.splitlines()]
    assert sorted(claimed) == sorted(keys)  # every row claimed, none twice
    assert sum(1 for out, _ in outputs if out.strip()) >= 2  # really shared between processes
    rows = Leases(engine, "check:0").rows(DIGEST)
    assert all(r.due_at is None and r.holder is None for r in rows)
    engine.dispose()


HOLDER = textwrap.dedent(
    """
    import sys, time, os
    from syndicator.storage.engine import open_database
    from syndicator.storage.leases import Leases
    leases = Leases(open_database(sys.argv[1]), f"doomed:{os.getpid()}", ttl=float(sys.argv[2]))
    [lease] = leases.claim("poll")
    print(lease.holder, flush=True)
    time.sleep(600)  # "mid-poll" until SIGKILL
    """
)


@pytest.mark.postgres
def test_sigkilled_holder_loses_its_lease_after_expiry(pg_url: str) -> None:
    engine = open_database(pg_url)
    other = Leases(engine, f"survivor:{os.getpid()}", ttl=30)
    other.ensure(POLL, ["partner-feed"], other.now())
    ttl = 3.0
    doomed = subprocess.Popen([sys.executable, "-c", HOLDER, pg_url, str(ttl)], stdout=subprocess.PIPE, text=True)
    assert doomed.stdout is not None
    holder = doomed.stdout.readline().strip()
    assert holder.startswith("doomed:")
    killed_at = time.monotonic()
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    assert other.claim(POLL) == []  # the dead holder's lease has not run out yet
    taken = []
    while not taken and time.monotonic() - killed_at < 20:
        time.sleep(0.1)
        taken = other.claim(POLL)
    assert taken, "the lease of a killed worker was never taken over"
    waited = time.monotonic() - killed_at
    assert ttl - 1.0 <= waited <= ttl + 3.0
    assert taken[0].previous_holder == holder and taken[0].attempts == 2
    assert other.complete(taken[0], None)
    engine.dispose()

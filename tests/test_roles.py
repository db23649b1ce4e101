"""Roles on the real PostgreSQL: a worker's /metrics, and no single-process `run` beside running workers."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_coordination import load, make_sources

from syndicator.render.write import detach_store
from syndicator.roles import run_worker
from syndicator.storage import locks
from syndicator.storage.engine import open_database
from syndicator.storage.leases import POLL, Leases

pytestmark = pytest.mark.postgres


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()
    finally:
        conn.close()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (None when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)$"
    for line in text.splitlines():
        if m := re.match(pattern, line):
            return float(m[1])
    return None


class WorkerThread:
    """``roles.run_worker`` (what `run --role worker` runs) on a thread of this process."""

    def __init__(self, settings: object, **options: object) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(settings,), kwargs=options, daemon=True)
        self.thread.start()

    def _run(self, settings: object, **options: object) -> None:
        try:
            run_worker(settings, self.stop, **options)  # type: ignore[arg-type]
        except BaseException as exc:  # the test reads it
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the worker did not stop"


@pytest.fixture
def settings_1s(tmp_path: Path, pg_url: str) -> Iterator[object]:
    settings = load(tmp_path, pg_url, make_sources(tmp_path, 3, 1, every="1s"), digest={"enabled": False})
    yield settings
    detach_store(settings.output.dir)


def test_worker_serves_metrics(tmp_path: Path, pg_url: str, settings_1s: object) -> None:
    engine = open_database(pg_url)
    dead = Leases(engine, "dead-host:1", ttl=0.5)
    # a worker that died holding src01's slot, and src00 ten slots behind: what an operator must see
    dead.ensure(POLL, ["src00", "src01", "src02"], dead.now() + timedelta(seconds=30))
    with engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE leases SET due_at = timezone('UTC', now()) - interval '10 seconds' "
                          "WHERE key IN ('src00', 'src01')"))
    [held] = dead.claim(POLL, keys=["src01"])
    assert held.key == "src01"
    port = free_port()
    worker = WorkerThread(settings_1s, metrics_host="127.0.0.1", metrics_port=port, holder="metrics:1")
    try:
        deadline = time.monotonic() + 60
        text_ = ""
        while time.monotonic() < deadline:
            try:
                status, ctype, text_ = get(port, "/metrics")
                if (sample(text_, "syndicator_polls_total", source="src01") or 0) >= 1 \
                        and (sample(text_, "syndicator_polls_total", source="src00") or 0) >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert worker.error is None, worker.error
        assert status == 200 and ctype.startswith("text/plain")
        assert (sample(text_, "syndicator_polls_total", source="src00") or 0) >= 2
        assert (sample(text_, "syndicator_worker_skipped_slots_total", source="src00") or 0) >= 9
        assert sample(text_, "syndicator_worker_skipped_slots_total", source="src02") == 0
        assert sample(text_, "syndicator_worker_lease_takeovers_total", kind="poll") == 1
        assert sample(text_, "syndicator_worker_leases_lost_total", kind="poll") == 0
        assert (sample(text_, "syndicator_worker_poll_lateness_seconds_count") or 0) >= 3  # src00 twice, src01
        assert sample(text_, "syndicator_worker_due", kind="poll") is not None
        assert sample(text_, "syndicator_worker_polls_in_flight") is not None
        assert (sample(text_, "syndicator_worker_renders_total") or 0) >= 0
        assert sample(text_, "syndicator_source_articles", source="src00") == 1
        status, ctype, body = get(port, "/healthz")
        assert status == 200 and '"ok": true' in body
        assert get(port, "/all.atom")[0] == 404  # a worker serves no feeds: that is the web nodes' job
    finally:
        worker.close()
        engine.dispose()
    assert worker.error is None
    # the metrics server's request threads end with the worker (left running, they kept a later fork in this
    # process from being safe: tests/test_stopping.py failed after this one)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("waitress")]


def test_single_process_run_is_refused_beside_workers(tmp_path: Path, pg_url: str, settings_1s: object) -> None:
    engine = open_database(pg_url)
    a = WorkerThread(settings_1s, holder="a:1")
    b = WorkerThread(settings_1s, holder="b:2")  # any number of workers at once
    try:
        deadline = time.monotonic() + 60
        while locks.shared_holders(engine, locks.RUN_LOCK) < 2:
            assert time.monotonic() < deadline and a.error is None and b.error is None, (a.error, b.error)
            time.sleep(0.1)
        cfg = str(settings_1s.config_path)  # type: ignore[attr-defined]
        r = subprocess.run([sys.executable, "-m", "syndicator", "--config", cfg, "run", "--port", str(free_port())],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, r.stderr
        lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        assert len(lines) == 1 and "2 scale-out worker(s)" in lines[0] and "--role worker" in lines[0], r.stderr
        assert "polling" not in r.stderr and "scheduler started" not in r.stderr
        st = subprocess.run([sys.executable, "-m", "syndicator", "--config", cfg, "status"],
                            capture_output=True, text=True, timeout=120)
        assert "2 scale-out worker(s) running" in st.stdout, st.stdout + st.stderr
    finally:
        a.close()
        b.close()
    assert a.error is None and b.error is None
    assert locks.shared_holders(engine, locks.RUN_LOCK) == 0  # stopped workers hold nothing
    engine.dispose()

"""`syndicator sync` while another process holds the writer's turn: it waits, or gives up with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result
from conftest import write_config

from syndicator.cli import main
from syndicator.storage.engine import open_database

HOLDER = """
import sys, time
from syndicator.storage import locks
from syndicator.storage.engine import open_database
lock = locks.acquire(open_database(sys.argv[1]), "sync")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(url: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _config(tmp_path: Path, archive: Path, db_url: str, lock_wait: str) -> Path:
    return write_config(tmp_path, archive, db_url=db_url, schedule={"lock_wait": lock_wait})


def test_sync_waits_for_the_writer_then_runs(tmp_path: Path, archive: Path, db_url: str) -> None:
    cfg = _config(tmp_path, archive, db_url, "60s")
    open_database(db_url)  # migrated before the clock starts: the holder's 3 s are all lock time
    proc = _holder(db_url, 3)
    try:
        result = CliRunner().invoke(main, ["--config", str(cfg), "sync"], catch_exceptions=False)
    finally:
        proc.wait(30)
    assert result.exit_code == 0, result.stderr
    assert "is syncing; waiting up to 60s" in result.stderr
    assert "sync: sources=1 new=1" in result.stdout


def _while_held(cfg: Path, db_url: str, command: str) -> Result:
    """Run ``command`` while another process holds the writer's turn for longer than it will wait."""
    proc = _holder(db_url, 60)
    try:
        return CliRunner().invoke(main, ["--config", str(cfg), command], catch_exceptions=False)
    finally:
        proc.kill()
        proc.wait(30)


def test_sync_gives_up_after_lock_wait_with_one_line(tmp_path: Path, archive: Path, db_url: str) -> None:
    cfg = _config(tmp_path, archive, db_url, "0.5s")
    result = _while_held(cfg, db_url, "sync")
    assert result.exit_code == 1
    assert "error: gave up after 0.5s: another process is still syncing" in result.stderr
    assert "Traceback" not in result.stderr


def test_digest_takes_the_writers_turn(tmp_path: Path, archive: Path, db_url: str) -> None:
    """`syndicator digest` rewrites the front page and the digest feeds: while a sync (or the service) holds the
    writer's turn it waits like `render`, so an older front page never lands over a newer one."""
    cfg = _config(tmp_path, archive, db_url, "0.5s")
    sync = CliRunner().invoke(main, ["--config", str(cfg), "sync"], catch_exceptions=False)
    assert sync.exit_code == 0, sync.stderr
    result = _while_held(cfg, db_url, "digest")
    assert result.exit_code == 1
    assert "error: gave up after 0.5s: another process is still syncing" in result.stderr
    again = CliRunner().invoke(main, ["--config", str(cfg), "digest"], catch_exceptions=False)
    assert again.exit_code == 0, again.stderr

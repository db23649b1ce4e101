"""Ctrl-C on a cold `syndicator sync`, as a terminal sends it (to the whole process group): the sync stops
after the file it is on, says so in one line, exits 130, leaves no process behind, and the next sync ends
with the database and feeds of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .databases import databases
from .posts import write_posts
from .runs import finish, fresh, served

POSTS = 2000


@pytest.mark.timeout(600)
def test_ctrl_c_stops_a_cold_sync_after_the_current_file_and_loses_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    write_posts(archive, POSTS)
    with databases("sqlite") as new_database:
        ref_config, ref_db = fresh(tmp_path / "reference", archive, new_database)
        finish(ref_config, 300)
        config, db = fresh(tmp_path / "stopped", archive, new_database)
        proc = subprocess.Popen(
            [sys.executable, "-m", "syndicator", "--config", str(config), "sync", "--no-progress"],
            cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        while db.committed() == 0:  # the first batch is stored: the workers are busy with the next ones
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        signalled = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - signalled

        assert proc.returncode == 130, err
        assert err.count("SIGINT: stopping after the current file") == 1, err
        assert "sync: [seed-archive] stopped after " in err, err
        assert "Traceback" not in err and "Aborted" not in err, err
        assert not out  # no summary line: the sync did not finish
        assert took < 30, took
        assert 0 < db.committed() < POSTS
        assert not db.problems()
        assert not (config.parent / "feeds" / "all.atom").exists()  # stopped before the render
        for _ in range(200):  # the workers end with the sync
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("a process of the stopped sync is still running")

        finish(config, 300)
        assert db.state() == ref_db.state()
        assert served(config.parent / "feeds") == served(ref_config.parent / "feeds")

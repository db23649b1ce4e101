"""The program as a user runs it (a process of its own): exit codes and output survive its quick exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import SEED_FILE, write_config


def syndicator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syndicator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_exit_codes_and_output_of_the_program(tmp_path: Path) -> None:
    archive = tmp_path / "posts"
    archive.mkdir()
    (archive / SEED_FILE.name).write_bytes(SEED_FILE.read_bytes())
    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")

    done = syndicator("--config", str(config), "sync", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sync: sources=1 new=1 ") and done.stdout.endswith("\n")
    assert (tmp_path / "feeds" / "all.atom").is_file()

    (archive / "999_broken.md").write_bytes(b"---\ntitle: \n---\n")  # nothing to publish in it
    done = syndicator("--config", str(config), "sync", "--no-progress", cwd=tmp_path)
    assert done.returncode == 1 and "skipped=1" in done.stdout
    assert "999_broken.md" in done.stderr

    done = syndicator("--config", str(tmp_path / "missing.yaml"), "sync", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1

    done = syndicator("--version", cwd=tmp_path)
    assert done.returncode == 0 and "syndicator" in done.stdout

    done = syndicator("no-such-command", cwd=tmp_path)
    assert done.returncode == 2 and "No such command" in done.stderr

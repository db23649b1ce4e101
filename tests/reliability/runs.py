"""Syncs as a user runs them, for the crash and stop tests: a fresh folder and database, the command as a
process of its own, and the files a reader can fetch from its output."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import write_config

from .databases import Database, NewDatabase
from .state import files


def start(config: Path) -> subprocess.Popen[bytes]:
    """`syndicator sync` of ``config`` as a process of its own (quiet, no progress bar)."""
    return subprocess.Popen(
        [sys.executable, "-m", "syndicator", "--config", str(config), "-q", "sync", "--no-progress"],
        cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def finish(config: Path, timeout: float) -> float:
    """An uninterrupted sync of ``config``, which must succeed; returns its wall seconds."""
    began = time.monotonic()
    proc = start(config)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()
    return time.monotonic() - began


def fresh(folder: Path, archive: Path, new_database: NewDatabase, desks: int = 1) -> tuple[Path, Database]:
    """A new folder and database with a config for ``archive`` (``desks`` > 1: one source per subfolder)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    db = new_database(folder)
    config = write_config(folder, archive, db_url=db.url)
    if desks > 1:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        source = data["sources"][0]
        data["sources"] = [{**source, "name": f"desk{n}", "path": str(archive / f"desk{n}")} for n in range(desks)]
        config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return config, db


def served(out: Path) -> dict[str, bytes]:
    """The output files a reader can fetch (dot files are markers and temporary files)."""
    return {k: v for k, v in files(out).items() if not k.rsplit("/", 1)[-1].startswith(".")}

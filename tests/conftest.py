"""Shared fixtures: databases (SQLite and the real PostgreSQL at 127.0.0.1:5432), configs, archives."""

from __future__ import annotations

import contextlib
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SEED_FILE = SEEDS / "000_eab97c569ba7ef6e.txt"
CORPUS = REPO.parent / "shared" / "corpus"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3):
            return True
    except Exception:
        return False


PG_AVAILABLE = _pg_available()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the real PostgreSQL; dropped afterwards."""
    if not PG_AVAILABLE:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 (database test) is not reachable")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'syndicator.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A temporary archive folder holding a copy of the seed."""
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy2(SEED_FILE, folder / SEED_FILE.name)
    return folder


def write_config(folder: Path, archive_dir: Path, *, db_url: str | None = None, **sections: Any) -> Path:
    """Write a config.yaml like the shipped one, pointed at ``archive_dir``; returns its path."""
    shipped = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    shipped["database"] = {"url": db_url or "sqlite:///var/syndicator.db"}
    shipped["output"] = {"dir": "feeds", "max_entries": 50}
    shipped["sources"] = [{"name": "seed-archive", "type": "archive", "path": str(archive_dir),
                           "timezone": "Asia/Shanghai", "every": "15m"}]
    for key, value in sections.items():
        shipped[key] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(shipped, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path, archive: Path) -> Path:
    return write_config(tmp_path, archive)


@contextlib.contextmanager
def another_thread_running() -> Iterator[None]:
    """A second thread runs while the block does (as the service's do): forking is off the table then."""
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        yield
    finally:
        release.set()
        other.join()


def drawn_text(chars: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[str]:
    """Text of ``chars`` drawn one at a time. Not ``st.text(alphabet=a | b)``: it merges the alphabet's
    strategies into one range of code points and then almost never draws hand-picked characters (0 to 12 of 300
    examples held one)."""
    return st.lists(chars, max_size=max_size).map("".join)

"""SQLite's WAL stays open while an engine lives: each of a sync's sessions is a new connection (NullPool),
and closing the last connection to a WAL database checkpoints the whole log into the database and deletes it
— once per batch of a cold sync, with a filesystem sync each time. A keeper connection prevents that."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from syndicator.storage.engine import open_database


def test_closing_a_session_does_not_checkpoint_the_wal_away(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    engine = open_database(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    wal = Path(f"{db}-wal")
    assert wal.exists() and wal.stat().st_size > 0  # the commit is still in the log: no checkpoint on close
    with engine.connect() as conn:  # and readers see it
        assert conn.execute(text("SELECT x FROM t")).scalar() == 1
    engine.dispose()  # the last connection: now the log is checkpointed into the database
    assert not wal.exists() or wal.stat().st_size == 0
    again = open_database(f"sqlite:///{db}")
    with again.connect() as conn:
        assert conn.execute(text("SELECT x FROM t")).scalar() == 1
    again.dispose()

"""Cross-process locks on one database: the service lock (one `run` at a time) and the writer's turn
(one sync at a time, so `sync` and the service never store the same file twice).

SQLite: an OS lock (``flock``) on a file beside the database (``<db>-<name>.lock``). PostgreSQL: a
session-level advisory lock keyed by the schema and the lock name, held on a connection of its own. Both
are released by the kernel / server when the process dies, so a crash never leaves a stale lock behind.
The standard library's ``fcntl`` is enough here: no lease rows to expire, nothing to clean up.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from ..errors import LockHeld

RUN_LOCK = "run"  # held by `syndicator run` for its whole life
SYNC_LOCK = "sync"  # the writer's turn: held while a sync (service tick or `syndicator sync`) stores and renders
PG_NAMESPACE = 727003  # first key of the two-key advisory lock; the second is hash(schema:name)
POLL_SECONDS = 0.1


class Lock:
    """A held lock; ``release()`` (or leaving the ``with`` block) gives it back."""

    def __init__(self, name: str, release: Any) -> None:
        self.name = name
        self._release = release

    def release(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_path(engine: Engine, name: str) -> Path | None:
    """The lock file of a SQLite database (None for an in-memory one)."""
    db = engine.url.database
    if not db or db == ":memory:":
        return None
    return Path(f"{db}-{name}.lock")


def _try_file(path: Path, shared: bool = False) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _try_pg(conn: Connection, name: str, shared: bool = False) -> bool:
    fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    return bool(
        conn.execute(
            text(f"SELECT {fn}(:ns, hashtext(current_schema() || ':' || :name))"),
            {"ns": PG_NAMESPACE, "name": name},
        ).scalar()
    )


def acquire(engine: Engine, name: str, *, wait: float = 0.0, shared: bool = False) -> Lock:
    """Take lock ``name`` on this database, waiting up to ``wait`` seconds; raises LockHeld otherwise.

    ``shared``: any number of shared holders at once, but never together with an exclusive holder (scale-out
    workers hold the ``run`` lock shared, a single-process `syndicator run` holds it exclusive).
    """
    deadline = time.monotonic() + wait
    unlock = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
    if engine.dialect.name == "postgresql":
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            while not _try_pg(conn, name, shared):
                if time.monotonic() >= deadline:
                    raise LockHeld(f"the {name} lock of this database is held by another process")
                time.sleep(POLL_SECONDS)
        except BaseException:
            conn.close()
            raise

        def release_pg() -> None:
            try:
                conn.execute(
                    text(f"SELECT {unlock}(:ns, hashtext(current_schema() || ':' || :name))"),
                    {"ns": PG_NAMESPACE, "name": name},
                )
            finally:
                conn.invalidate()  # never hand a connection that might still hold the lock back to the pool
                conn.close()

        return Lock(name, release_pg)
    path = lock_path(engine, name)
    if path is None:
        return Lock(name, None)  # in-memory SQLite: one process only
    path.parent.mkdir(parents=True, exist_ok=True)
    while (fd := _try_file(path, shared)) is None:
        if time.monotonic() >= deadline:
            raise LockHeld(f"{path}: held by another process")
        time.sleep(POLL_SECONDS)

    def release_file() -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    return Lock(name, release_file)


def shared_holders(engine: Engine, name: str) -> int:
    """How many sessions hold lock ``name`` shared right now (PostgreSQL; 0 elsewhere): running workers."""
    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' AND granted "
                 "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                 "AND classid = :ns AND objid = hashtext(current_schema() || ':' || :name)::oid"),
            {"ns": PG_NAMESPACE, "name": name},
        ).scalar()
        conn.rollback()
    return int(n or 0)


def is_held(engine: Engine, name: str) -> bool:
    """Whether another process holds lock ``name`` right now (``status`` asks this about the service)."""
    try:
        acquire(engine, name).release()
    except LockHeld:
        return True
    return False


@contextmanager
def holding(engine: Engine, name: str, *, wait: float = 0.0) -> Iterator[Lock]:
    lock = acquire(engine, name, wait=wait)
    try:
        yield lock
    finally:
        lock.release()

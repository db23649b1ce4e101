"""Engines: SQLite in WAL mode with a busy timeout and ``BEGIN IMMEDIATE`` writes; PostgreSQL as is.

Migrations (Alembic, ``storage/migrations``) are applied automatically when a database is opened. Alembic
(with Mako and its DDL modules: a good part of a no-op sync's start-up) is imported only when the stored
revision is not the newest one: one plain query answers that.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

from ..errors import StorageError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 60_000
READ_ONLY = "syndicator_read_only"  # execution option of ``reader``'s connections


def reader(engine: Engine) -> Engine:
    """``engine`` for transactions that only read. On SQLite they begin as plain (deferred) ``BEGIN``: in WAL mode
    such a transaction reads a snapshot and never waits for a writer, where ``BEGIN IMMEDIATE`` (every writer's
    begin, see ``make_engine``) would wait for the writer's turn. A write in one fails instead of waiting."""
    return engine.execution_options(**{READ_ONLY: True})


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver we ship)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is disabled so that we can issue BEGIN IMMEDIATE ourselves:
    # a writer takes the lock up front instead of failing later with "database is locked" on upgrade.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # 32 MB of page cache instead of 2 MB: a batch inserts ~20,000 near-duplicate index rows at random places
    # of one B-tree, which then mostly hit the cache (a cold sync stores 40 % faster)
    cur.execute("PRAGMA cache_size=-32768")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the SQLite file's folder when needed."""
    url = normalize_url(url)
    if is_sqlite(url):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:'([^']*)'|\"([^\"]*)\"|None)\s*$", re.M)


@cache
def head_revision() -> str | None:
    """The newest migration's revision, read from the files of ``migrations/versions`` without Alembic
    (None when they do not name exactly one head: then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = {kind: a or b for kind, a, b in _REVISION.findall(path.read_text(encoding="utf-8"))}
        if not found.get("revision"):
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revisions(engine: Engine) -> list[str] | None:
    """The revisions in ``alembic_version`` (one plain query), or None when that cannot be read."""
    try:
        with engine.connect() as conn:
            rows = [str(r[0]) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
            conn.rollback()
            return rows
    except DBAPIError:  # no table yet, or no database: the full path below says which
        return None


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (no-op when it is already there)."""
    head = head_revision()
    if head is not None:
        stored = _stored_revisions(engine)
        if stored == [head]:
            return  # the usual case: no Alembic import at all
        if stored is None and _create_new_sqlite(engine, head):
            return
    _upgrade(engine)


def _create_new_sqlite(engine: Engine, head: str) -> bool:
    """A new, empty SQLite database gets the models' tables and the head revision in one transaction.

    Importing Alembic and running every migration cost 0.17 s of a first sync (and of every test that opens
    a new database); the tables straight from the models take 0.01 s. tests/storage/test_migrations.py checks
    that both ways give the same tables, columns, indexes and keys. Anything else (a database with tables
    but no revision, PostgreSQL) goes through Alembic.
    """
    if not is_sqlite(str(engine.url)):
        return False
    from .schema import Base

    try:
        with engine.begin() as conn:  # BEGIN IMMEDIATE: a second process opening it now waits, then sees tables
            if conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar():
                return False
            Base.metadata.create_all(conn)
            # the table Alembic keeps its revision in, as Alembic creates it
            conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                                 "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
            conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
    except OperationalError as exc:
        raise _cannot_open(engine, exc) from None
    log.info("created database at revision %s", head)
    return True


def _cannot_open(engine: Engine, exc: OperationalError) -> StorageError:
    return StorageError(f"cannot open database {engine.url.render_as_string(hide_password=True)}: {exc.orig}")


def _upgrade(engine: Engine) -> None:
    """``migrate`` through Alembic: whatever revision the database is at (none included) → head."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(engine)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            conn.rollback()
    except OperationalError as exc:
        raise _cannot_open(engine, exc) from None
    if current == head:
        return
    log.info("migrating database from %s to %s", current or "empty", head)
    if engine.dialect.name == "postgresql":
        # Several processes may start at once: one migrates, the others wait on the advisory lock.
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(727001)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    else:
        command.upgrade(cfg, "head")


def open_database(url: str) -> Engine:
    """Engine for ``url`` with the schema migrated to head."""
    engine = make_engine(url)
    migrate(engine)
    return engine

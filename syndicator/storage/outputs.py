"""Rendered outputs kept in the database (table ``outputs``): what web nodes on any host serve.

Workers render and ``put`` here (through ``render.write``'s attached store); web nodes ``head`` (a primary
key lookup for the ETag) on every request and ``get`` the bytes only when their in-memory copy is stale.
The ETag is computed from the bytes exactly like the file server does, so every node, file or database,
answers with the same validator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import clock
from ..errors import StorageError
from ..render.write import etag_of
from . import schema as m


@dataclass(frozen=True, slots=True)
class StoredOutput:
    path: str
    data: bytes
    etag: str
    updated: datetime


class DbOutputStore:
    """``render.write.OutputStore`` on the ``outputs`` table, plus the reads a web node needs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def put(self, relpath: str, data: bytes) -> bool:
        """Upsert the bytes unless the stored ETag is already theirs; True when the row changed."""
        etag = etag_of(data)
        ins = self._insert(m.Output).values(
            path=relpath, etag=etag, updated=clock.now(), content=data
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["path"],
            set_={"etag": ins.excluded.etag, "updated": ins.excluded.updated, "content": ins.excluded.content},
            where=m.Output.etag != ins.excluded.etag,
        ).returning(m.Output.path)  # a row back only when one was written (rowcount of an INSERT reads -1)
        try:
            with Session(self.engine) as s, s.begin():
                return s.connection().execute(stmt).first() is not None
        except DBAPIError as exc:
            raise StorageError(f"cannot store output {relpath}: {exc.orig}") from None

    def delete(self, relpath: str) -> bool:
        try:
            with Session(self.engine) as s, s.begin():
                return bool(_rowcount(s.connection().execute(delete(m.Output).where(m.Output.path == relpath))))
        except DBAPIError as exc:
            raise StorageError(f"cannot remove output {relpath}: {exc.orig}") from None

    def paths(self, under: str) -> list[str]:
        prefix = under.rstrip("/") + "/"
        with self._read() as s:
            return sorted(
                p for p in s.scalars(select(m.Output.path).where(m.Output.path.startswith(prefix, autoescape=True)))
            )

    def head(self, relpath: str) -> tuple[str, datetime] | None:
        """(ETag, updated) of a stored output, or None; cheap enough for every request."""
        with self._read() as s:
            row = s.execute(select(m.Output.etag, m.Output.updated).where(m.Output.path == relpath)).first()
            return None if row is None else (row[0], row[1])

    def get(self, relpath: str) -> StoredOutput | None:
        with self._read() as s:
            row = s.execute(
                select(m.Output.etag, m.Output.updated, m.Output.content).where(m.Output.path == relpath)
            ).first()
            if row is None or row[2] is None:
                return None
            return StoredOutput(relpath, bytes(row[2]), row[0], row[1])

    def all_etags(self) -> dict[str, str]:
        """path → ETag of every stored output (tests and consistency checks)."""
        with self._read() as s:
            return {p: e for p, e in s.execute(select(m.Output.path, m.Output.etag))}

    def _read(self) -> _ReadSession:
        return _ReadSession(self.engine)


class _ReadSession:
    """A short read-only session whose database errors become StorageError (web nodes answer 503)."""

    def __init__(self, engine: Engine) -> None:
        self._s = Session(engine)

    def __enter__(self) -> Session:
        return self._s

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._s.close()
        if isinstance(exc, DBAPIError):
            raise StorageError(f"cannot read outputs: {exc.orig}") from None


def stores_outputs(engine: Engine) -> bool:
    """Outputs go to the database when it is PostgreSQL: that is what lets web nodes on other hosts serve them."""
    return engine.dialect.name == "postgresql"


def _rowcount(result: object) -> int:
    """Rows an UPDATE/INSERT … ON CONFLICT/DELETE touched (the typing of ``Session.execute`` hides it)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)

"""Leases: work that exactly one worker does at a time, claimed through the database.

Several worker processes on several hosts share one PostgreSQL database. APScheduler 3 cannot share a job
store between them, so each unit of work (a source poll, the re-render of one output, the digest of a day)
is a row in ``leases`` that a worker *claims*:

- ``claim`` picks due rows that nobody holds (or whose holder's lease ran out) with
  ``SELECT … FOR UPDATE SKIP LOCKED``: two workers asking at the same moment get different rows, and nobody
  waits on a row another worker is claiming. The claimed rows get a holder, an expiry and a new ``token``.
- ``renew`` pushes the expiry out while the work runs; a holder that dies stops renewing, its lease runs
  out and the next ``claim`` by any worker takes the row over (``attempts`` > 1 tells it is a redo).
- ``complete`` clears the holder and sets the next due time in one statement that only succeeds for the
  current token: a holder that lost its lease cannot overwrite the newer holder's schedule.
- ``request`` (re-render this output) bumps ``seq``; ``complete`` only clears the due time when ``seq`` is
  still what the claim saw, so a change that arrives during a render makes it run again, never lost.

Expiry is judged by the database clock (``clock_timestamp()``) so hosts with skewed clocks agree.

Why hand-written and not a job library (procrastinate, pgqueuer): those queue one-shot jobs, while this is a
recurring schedule per source with per-slot claims, render requests that coalesce and a fenced completion,
in the same schema and migrations as the data and on synchronous SQLAlchemy; it is about 200 lines.
SQLite runs one writer at a time (``BEGIN IMMEDIATE``) so the same code is correct there too, only serial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, case, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import clock
from ..errors import StorageError
from . import schema as m

POLL, RENDER, DIGEST = "poll", "render", "digest"
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim on one row: valid while ``token`` is the row's token and ``expires_at`` has not passed."""

    kind: str
    key: str
    due_at: datetime
    token: int
    seq: int
    holder: str
    expires_at: datetime
    attempts: int  # 1 on a first claim; more when an earlier holder's lease ran out (a redo)
    previous_holder: str | None  # who held it before, when this claim took over an expired lease


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A row as stored (for status pages and tests)."""

    kind: str
    key: str
    due_at: datetime | None
    seq: int
    holder: str | None
    token: int
    expires_at: datetime | None
    attempts: int
    done_at: datetime | None
    done_by: str | None


class Leases:
    """Claims on ``leases`` rows for one holder (``host:pid`` of a worker)."""

    def __init__(self, engine: Engine, holder: str, ttl: float = 30.0) -> None:
        if ttl <= 0:
            raise ValueError("a lease needs a positive length")
        self.engine = engine
        self.holder = holder
        self.ttl = timedelta(seconds=ttl)
        self._pg = engine.dialect.name == "postgresql"

    # -- time -----------------------------------------------------------------------------------
    def now(self, s: Session | None = None) -> datetime:
        """The database's clock on PostgreSQL (all hosts agree on it), else the process clock."""
        if not self._pg:
            return clock.now()
        if s is not None:
            return self._pg_now(s)
        with Session(self.engine) as s2:
            return self._pg_now(s2)

    @staticmethod
    def _pg_now(s: Session) -> datetime:
        value = s.execute(text("SELECT clock_timestamp() AT TIME ZONE 'UTC'")).scalar_one()
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]

    # -- rows -----------------------------------------------------------------------------------
    def ensure(self, kind: str, keys: Iterable[str], due_at: datetime | None) -> int:
        """Create the rows that do not exist yet, due at ``due_at``; existing rows keep their schedule."""
        rows = [
            {"kind": kind, "key": k, "due_at": due_at, "seq": 0, "token": 0, "attempts": 0}
            for k in dict.fromkeys(keys)
        ]
        if not rows:
            return 0
        ins = (postgresql.insert if self._pg else sqlite.insert)(m.Lease)
        # RETURNING counts the rows made: the rowcount of a many-row INSERT … ON CONFLICT is -1 on PostgreSQL
        stmt = ins.on_conflict_do_nothing(index_elements=["kind", "key"]).returning(m.Lease.key)
        return self._write(lambda s: len(s.connection().execute(stmt, rows).all()), kind)

    def request(self, kind: str, keys: Iterable[str], at: datetime | None = None, *, s: Session | None = None) -> None:
        """Ask for the work on ``keys`` to be done (again) at ``at`` (now): bumps ``seq``, keeps an earlier due time.

        With ``s`` the request joins that session's transaction (e.g. the batch that changed the stories),
        so it is committed exactly when the change is.
        """
        wanted = sorted(set(keys))  # one lock order for every transaction: concurrent batches cannot deadlock
        if not wanted:
            return

        def go(sess: Session) -> None:
            when = at or self.now(sess)
            ins = (postgresql.insert if self._pg else sqlite.insert)(m.Lease)
            stmt = ins.on_conflict_do_update(
                index_elements=["kind", "key"],
                set_={
                    "seq": m.Lease.seq + 1,
                    "due_at": case(
                        (or_(m.Lease.due_at.is_(None), m.Lease.due_at > ins.excluded.due_at), ins.excluded.due_at),
                        else_=m.Lease.due_at,
                    ),
                },
            )
            for start in range(0, len(wanted), 1000):
                sess.connection().execute(stmt, [
                    {"kind": kind, "key": k, "due_at": when, "seq": 1, "token": 0, "attempts": 0}
                    for k in wanted[start : start + 1000]
                ])

        if s is not None:
            go(s)
        else:
            self._write(go, kind)

    def requester(self, kind: str, keys_for: Callable[[_R], Iterable[str]]) -> Callable[[Session, _R], None]:
        """A ``Repository.batch_hooks`` entry: requests ``keys_for(result)`` inside the batch's transaction."""

        def hook(s: Session, result: _R) -> None:
            self.request(kind, keys_for(result), s=s)

        return hook

    def forget(self, kind: str, keep: Iterable[str]) -> int:
        """Remove the rows of ``kind`` whose key is not in ``keep`` and that nobody holds (sources removed from config)."""
        keep_set = set(keep)

        def go(s: Session) -> int:
            now = self.now(s)
            gone = [
                k for k in s.scalars(select(m.Lease.key).where(m.Lease.kind == kind)) if k not in keep_set
            ]
            n = 0
            for k in gone:
                row = s.get(m.Lease, (kind, k), with_for_update=True)
                if row is not None and (row.holder is None or (row.expires_at is not None and row.expires_at <= now)):
                    s.delete(row)
                    n += 1
            return n

        return self._write(go, kind)

    # -- claims ---------------------------------------------------------------------------------
    def _now_sql(self) -> Any:
        """The current time inside a statement: the database's on PostgreSQL (no extra round trip)."""
        if self._pg:
            return func.timezone("UTC", func.now(), type_=m.UTCDateTime())
        return literal(clock.now(), m.UTCDateTime())

    def _expires_sql(self) -> Any:
        if self._pg:
            return func.timezone("UTC", func.now() + self.ttl, type_=m.UTCDateTime())
        return literal(clock.now() + self.ttl, m.UTCDateTime())

    def claim(self, kind: str, limit: int = 1, *, keys: Iterable[str] | None = None) -> list[Lease]:
        """Claim up to ``limit`` due, free rows of ``kind`` (oldest due first); [] when there are none.

        With ``keys``: those rows if they are free, due or not (a shell `sync` of named sources).
        One statement: ``UPDATE leases … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) … RETURNING``.
        """
        wanted = None if keys is None else sorted(set(keys))

        def go(s: Session) -> list[Lease]:
            now = self._now_sql()
            which = (
                [m.Lease.due_at.is_not(None), m.Lease.due_at <= now] if wanted is None else [m.Lease.key.in_(wanted)]
            )
            free = (
                select(m.Lease.kind, m.Lease.key, m.Lease.holder.label("previous"))
                .where(
                    m.Lease.kind == kind,
                    *which,
                    or_(m.Lease.holder.is_(None), m.Lease.expires_at <= now),
                )
                .order_by(m.Lease.due_at, m.Lease.key)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .subquery("free")
            )
            stmt = update(m.Lease).values(
                holder=self.holder, claimed_at=now, expires_at=self._expires_sql(),
                token=m.Lease.token + 1, attempts=m.Lease.attempts + 1,
            )
            returning = (m.Lease.key, m.Lease.due_at, m.Lease.token, m.Lease.seq, m.Lease.expires_at,
                         m.Lease.attempts)
            if self._pg:
                stmt = stmt.where(m.Lease.kind == free.c.kind, m.Lease.key == free.c.key)
                rows: list[Any] = list(s.connection().execute(stmt.returning(*returning, free.c.previous)))
            else:  # SQLite's RETURNING sees only the target table; its one writer at a time makes two steps safe
                previous = {k: h for _, k, h in s.connection().execute(select(free))}
                stmt = stmt.where(m.Lease.kind == kind, m.Lease.key.in_(list(previous)))
                rows = [(*r, previous[r[0]]) for r in s.connection().execute(stmt.returning(*returning))]
            leases = [
                Lease(kind, key, due_at, token, seq, self.holder, expires, attempts, prev)
                for key, due_at, token, seq, expires, attempts, prev in rows
            ]
            return sorted(leases, key=lambda x: (x.due_at, x.key))

        return self._write(go, kind)

    def next_due_in(self, kind: str) -> float | None:
        """Seconds until the earliest free row of ``kind`` falls due (≤ 0: one is due now); None: none scheduled.

        An idle worker sleeps this long instead of a whole tick, so a poll starts at its slot, not up to a
        tick after it. Rows another worker holds are not counted (they come back when completed).
        """
        now = self._now_sql()
        try:
            with Session(self.engine) as s:
                first, at = s.execute(
                    select(func.min(m.Lease.due_at), now).where(
                        m.Lease.kind == kind, m.Lease.due_at.is_not(None),
                        or_(m.Lease.holder.is_(None), m.Lease.expires_at <= now),
                    )
                ).one()
        except DBAPIError as exc:
            raise StorageError(f"leases ({kind}): database error: {exc.orig}") from None
        if first is None:
            return None
        return float((first - at).total_seconds())

    def renew(self, lease: Lease) -> Lease | None:
        """Push the expiry out by the lease length; None when the lease was lost (taken over)."""

        def go(s: Session) -> Lease | None:
            row = s.connection().execute(
                update(m.Lease)
                .where(m.Lease.kind == lease.kind, m.Lease.key == lease.key, m.Lease.token == lease.token,
                       m.Lease.holder == self.holder)
                .values(expires_at=self._expires_sql())
                .returning(m.Lease.expires_at)
            ).first()
            if row is None:
                return None
            return replace(lease, expires_at=row[0] if row[0] is not None else lease.expires_at)

        return self._write(go, lease.kind)

    def complete(self, lease: Lease, next_due: datetime | None, *, drop: bool = False) -> bool:
        """The work is done: free the row and schedule the next time (None: not again until requested).

        False when the lease was lost meanwhile (another worker holds the row now; nothing is changed).
        When the work was requested again during the run (``seq`` moved), the row stays due. With ``drop``
        a row that is not due again is deleted (one-off work such as an article page: the table does not
        grow with every output ever rendered; a new request makes a new row).
        """

        def go(s: Session) -> bool:
            if drop and next_due is None:
                gone = _rowcount(s.connection().execute(
                    delete(m.Lease).where(m.Lease.kind == lease.kind, m.Lease.key == lease.key,
                                          m.Lease.token == lease.token, m.Lease.holder == self.holder,
                                          m.Lease.seq == lease.seq)
                ))
                if gone:
                    return True
            n = _rowcount(s.connection().execute(
                update(m.Lease)
                .where(m.Lease.kind == lease.kind, m.Lease.key == lease.key, m.Lease.token == lease.token,
                       m.Lease.holder == self.holder)
                .values(
                    holder=None, expires_at=None, attempts=0, done_at=self._now_sql(), done_by=self.holder,
                    due_at=case((m.Lease.seq == lease.seq, literal(next_due, m.UTCDateTime())), else_=m.Lease.due_at),
                )
            ))
            return bool(n)

        return self._write(go, lease.kind)

    def release(self, lease: Lease, retry_at: datetime | None = None) -> bool:
        """Give the work back undone (a stopping worker): free now, due again at ``retry_at`` or as it was."""

        def go(s: Session) -> bool:
            # not done, not failed: the claim does not count as an attempt
            values: dict[str, object] = {"holder": None, "expires_at": None,
                                         "attempts": case((m.Lease.attempts > 0, m.Lease.attempts - 1), else_=0)}
            if retry_at is not None:
                values["due_at"] = retry_at
            n = _rowcount(s.connection().execute(
                update(m.Lease)
                .where(m.Lease.kind == lease.kind, m.Lease.key == lease.key, m.Lease.token == lease.token,
                       m.Lease.holder == self.holder)
                .values(**values)
                .execution_options(synchronize_session=False)
            ))
            return bool(n)

        return self._write(go, lease.kind)

    # -- reading --------------------------------------------------------------------------------
    def rows(self, kind: str | None = None) -> list[LeaseRow]:
        with Session(self.engine) as s:
            q = select(m.Lease).order_by(m.Lease.kind, m.Lease.key)
            if kind is not None:
                q = q.where(m.Lease.kind == kind)
            return [
                LeaseRow(r.kind, r.key, r.due_at, r.seq, r.holder, r.token, r.expires_at, r.attempts, r.done_at,
                         r.done_by)
                for r in s.scalars(q)
            ]

    def count(self, kind: str) -> int:
        """How many rows of ``kind`` exist (due or not)."""
        with Session(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(m.Lease).where(m.Lease.kind == kind)) or 0)

    def due_count(self, kind: str) -> int:
        """How many rows of ``kind`` are due now (held or not): the backlog a status page shows."""
        with Session(self.engine) as s:
            now = self.now(s)
            return int(s.scalar(
                select(func.count()).select_from(m.Lease)
                .where(m.Lease.kind == kind, m.Lease.due_at.is_not(None), m.Lease.due_at <= now)
            ) or 0)

    # -- helpers --------------------------------------------------------------------------------
    def _write(self, fn: Callable[[Session], _T], kind: str) -> _T:
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                return fn(s)
        except DBAPIError as exc:
            raise StorageError(f"leases ({kind}): database error: {exc.orig}") from None



def _rowcount(result: object) -> int:
    """Rows an UPDATE/INSERT … ON CONFLICT/DELETE touched (the typing of ``Session.execute`` hides it)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)

"""Queries. The only place that reads or writes rows; callers get plain values back.

One transaction per source batch: a source's fetch state (file sizes, mtimes, hashes, ETag) is committed
together with its articles, so a crash in the middle means a free retry, never a half-applied batch.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import logging
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Engine, Select, Table, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from .. import clock, dedup
from ..errors import StorageError
from ..types import Article as ArticleValue
from ..types import Carrier, StoryEntry
from ..types import Tag as TagValue
from . import schema as m
from .bandmap import BandMap
from .engine import reader

log = logging.getLogger(__name__)
# "the story is live", written as a function of the column: SQLite then drives a query by the index of its
# ORDER BY or range (``published``, the tag's stories) instead of ``ix_stories_withdrawn``, which matches
# nearly every row and made "the newest 50" sort the whole table (withdrawn is NOT NULL: same rows).
_LIVE = func.coalesce(m.Story.withdrawn, False).is_(False)
# the columns a feed entry is made of (Repository._entries)
_STORY = (m.Story.id, m.Story.canonical_article_id, m.Story.published, m.Story.updated)
_MEMBER = (m.Article.id, m.Article.story_id, m.Article.title, m.Article.link, m.Article.author, m.Article.summary,
           m.Article.channel, m.Article.publisher, m.Article.source_id)
T = TypeVar("T")
_BAND_INDEX = "ix_article_bands_key"  # the band key look-up index a bulk sync builds at its end (bulk_index)
_BAND_COLUMNS = ("article_id", "band_no", "band_key")  # the rows written without the ORM (_insert_plain)
_SAY_INDEXING = 10_000  # articles: writing a bulk sync's index for this many takes about a second; say so first
#: The day cache (``Repository.remember_busy_days``) keeps days of at least this many stories, this many days.
BUSY_DAY = 500
BUSY_DAYS_KEPT = 3


@dataclass(frozen=True, slots=True)
class FileState:
    size: int | None = None
    mtime_ns: int | None = None
    raw_hash: str | None = None


# a stored file state as ``file_states`` reads it: (size, mtime_ns, raw_hash)
StoredFile = tuple[int | None, int | None, str | None]


@dataclass(frozen=True, slots=True)
class FetchState:
    """A remote source's HTTP state: what to send next time, where it now lives, whether it is disabled.

    ``consecutive_failures`` is read-only here (``record_attempt`` keeps it).
    """

    etag: str | None = None
    last_modified: str | None = None
    current_url: str | None = None
    configured_url: str | None = None
    last_status: int | None = None
    redirect_target: str | None = None
    redirect_count: int = 0
    interval_seconds: int | None = None
    disabled_reason: str | None = None
    consecutive_failures: int = 0


@dataclass(frozen=True, slots=True)
class ItemChange:
    """One key of a source as just seen: its new state, and its article when it was (re)parsed."""

    key: str
    state: FileState
    article: ArticleValue | None = None
    error: str | None = None
    fingerprint: dedup.Fingerprint | None = None  # the article's, when computed already (worker processes)


@dataclass(slots=True)
class BatchResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    withdrawn: int = 0
    changed_stories: set[str] = field(default_factory=set)
    changed_tags: set[str] = field(default_factory=set)  # slugs
    # the `published` a changed story had before this batch moved it (the digests re-check those days too)
    moved_from: set[datetime] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return bool(self.changed_stories)


@dataclass(frozen=True, slots=True)
class TagInfo:
    name: str
    slug: str
    stories: int
    newest: datetime | None


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    type: str
    location: str | None
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    consecutive_failures: int
    next_due: datetime | None
    etag: str | None
    articles: int
    disabled_reason: str | None
    current_url: str | None = None
    last_status: int | None = None


class Repository:
    """All database access of syndicator goes through here."""

    def __init__(self, engine: Engine, thresholds: dedup.Thresholds | None = None) -> None:
        self.engine = engine
        self._reader = reader(engine)  # for transactions that only read
        self.thresholds = thresholds or dedup.Thresholds()
        # called inside each save_batch transaction, before commit (scale-out: render requests commit with it)
        self.batch_hooks: list[Callable[[Session, BatchResult], None]] = []
        # (start, end, base_url) → story id → (changed_at, entry); None: off (see remember_busy_days)
        self._days: OrderedDict[tuple[datetime, datetime, str], dict[str, tuple[datetime, StoryEntry]]] | None = None
        self._days_lock = threading.Lock()
        self._bulk: _BulkIndex | None = None  # see bulk_index

    def remember_busy_days(self) -> None:
        """Keep the digest entries of busy days between ``day_entries`` calls (for a long-running process).

        The service re-renders today's digest page after every change; on a day of thousands of stories,
        loading them again is most of that. Off by default: a one-shot command loads each day once."""
        self._days = OrderedDict()

    # -- bulk syncs -----------------------------------------------------------------------------
    @contextmanager
    def bulk_index(self) -> Iterator[bool]:
        """Store a sync into an empty near-duplicate index without keeping ``ix_article_bands_key`` up to date.

        Yields whether bulk mode is on. It is on SQLite when no article is indexed yet (a first sync): the
        index is dropped, each batch's band look-ups are answered from a ``BandMap`` of what this sync stored
        (the same rows: nothing else was indexed), and at the end the map's rows are written in the order of
        their primary key and the index is built once, also after an error or a stop (a sync's first Ctrl-C
        included; not after KeyboardInterrupt, a second Ctrl-C: that ends the sync at once, as a kill would).
        Random inserts into those B-trees were most of a cold sync at 100,000 posts. Should another process
        index articles meanwhile (every writer takes the writer's turn, so only a stray one could), the next
        batch sees it and writes the rows and the index before its look-ups. A process killed in bulk mode
        leaves articles without their rows and the index missing: the next sync indexes them and builds it
        first (``_ensure_band_index``).
        """
        if self._bulk is not None or not self.thresholds.enabled or self.engine.dialect.name != "sqlite":
            yield False
            return
        try:
            with self._session() as s, s.begin():
                self._ensure_band_index(s)
                empty = s.scalar(select(m.ArticleBand.article_id).limit(1)) is None
                if empty:
                    s.execute(text(f"DROP INDEX {_BAND_INDEX}"))
        except DBAPIError as exc:
            raise StorageError(f"database error while preparing the near-duplicate index: {exc.orig}") from None
        if not empty:
            yield False
            return
        self._bulk = _BulkIndex(BandMap(dedup.BANDS + 1))
        try:
            yield True
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C or an exit: end at once, as a killed sync
            # KeyboardInterrupt may have broken into a write whose transaction SQLite still holds open: writing
            # the rows now waited for that lock for the whole busy timeout, and at 100,000 posts they are
            # seconds of work the user asked not to wait for
            self._bulk = None
            raise
        finally:
            self._end_bulk()  # nothing left to write after the above

    def expect_articles(self, count: Callable[[], int]) -> None:
        """In bulk mode, make room in the map for ``count()`` articles; ``count`` (a walk of the archive, say) is
        called only then."""
        if self._bulk is not None:
            self._bulk.bands.reserve(count())

    def leave_bulk(self, max_articles: int) -> Callable[[], None] | None:
        """Leave bulk mode now and hand back what is left of it (write the map's rows, build the index) for the
        caller to run where it likes; None outside bulk mode, or (staying in it) when the map holds more than
        ``max_articles`` articles.

        ``sync`` has a full render's forked copy run it before the copy's story pages, beside the feeds this
        process renders: the render never reads the near-duplicate index, and the rows and the index were
        seconds of one core between the storing and the render. Until it has run the database is as a killed
        bulk sync leaves it, which the next sync repairs.
        """
        if self._bulk is None or len(self._bulk.bands) > max_articles:
            return None
        bulk, self._bulk = self._bulk, None
        return functools.partial(self._write_bulk, bulk)

    def _end_bulk(self) -> None:
        """Leave bulk mode at the end of ``bulk_index``: write the map's rows, build ``ix_article_bands_key`` (one
        sort) and free the map (unless another writer, ``leave_bulk`` or a Ctrl-C ended bulk mode already)."""
        bulk, self._bulk = self._bulk, None
        if bulk is not None:
            self._write_bulk(bulk)

    def _write_bulk(self, bulk: _BulkIndex) -> None:
        """Write a bulk sync's rows and index in one transaction (``_index_bulk``). Runs after a failed sync
        too: a database that fails again here (a full disk) must not hide the sync's own error; the next sync
        writes the rows and builds the index before anything else."""
        if len(bulk.bands) >= _SAY_INDEXING:
            log.info("building the near-duplicate index of %d articles", len(bulk.bands))
        try:
            with self._session() as s, s.begin():
                self._index_bulk(s, bulk.bands)
        except DBAPIError as exc:
            log.warning("the near-duplicate index could not be built (%s); the next sync builds it", exc.orig)

    @staticmethod
    def _index_bulk(s: Session, bands: BandMap) -> None:
        """Leaving bulk mode: the map's rows in primary key order (50,000 at a time: never all in memory at
        once), then the key index over them."""
        started = time.monotonic()
        rows = bands.rows()
        while chunk := list(itertools.islice(rows, 50_000)):
            _insert_plain(s, m.ArticleBand, _BAND_COLUMNS, chunk)
        log.debug("wrote the near-duplicate index rows in %.2fs", time.monotonic() - started)
        Repository._ensure_band_index(s, backfill=False)  # every row was just written: nothing to backfill

    @staticmethod
    def _ensure_band_index(s: Session, *, backfill: bool = True) -> None:
        """Build ``ix_article_bands_key`` when it is missing (dropped by a bulk sync that did not finish).

        ``backfill``: first give their rows to the live articles that such a sync stored without them (it
        writes them at its end). Off when the caller has just written every row: the backfill reads every
        article's row to find the ones without.
        """
        started = time.monotonic()
        if s.scalar(text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :n"), {"n": _BAND_INDEX}):
            return
        if backfill:
            Repository._backfill_bands(s)
        s.execute(text(f"CREATE INDEX {_BAND_INDEX} ON {_table(m.ArticleBand).name} (band_key)"))
        log.debug("built the near-duplicate index in %.2fs", time.monotonic() - started)

    @staticmethod
    def _backfill_bands(s: Session) -> None:
        """Index the live articles that have no band rows (stored by a bulk sync that was killed)."""
        unindexed = list(s.scalars(select(m.Article.id).where(
            m.Article.withdrawn_at.is_(None),
            ~select(m.ArticleBand.article_id).where(m.ArticleBand.article_id == m.Article.id).exists(),
        )))
        if not unindexed:
            return
        log.info("indexing %d articles that an interrupted sync stored without their near-duplicate rows",
                 len(unindexed))
        for chunk in _chunks(unindexed, _BatchCandidates.CHUNK):  # texts a chunk at a time: memory stays flat
            texts = s.execute(select(m.Article.id, m.Article.content_text, m.Article.title)
                              .where(m.Article.id.in_(chunk)))
            _insert_plain(s, m.ArticleBand, _BAND_COLUMNS,
                          [(aid, i, k) for aid, text_, title in texts
                           for i, k in enumerate(dedup.fingerprint(text_, title).bands)])

    # -- sources --------------------------------------------------------------------------------
    def ensure_source(self, name: str, type_: str, location: str | None) -> int:
        try:
            return self._ensure_source(name, type_, location)
        except IntegrityError:  # another process registered it at the same moment (scale-out workers)
            return self._ensure_source(name, type_, location)

    def _ensure_source(self, name: str, type_: str, location: str | None) -> int:
        with self._session() as s, s.begin():
            src = s.scalar(select(m.Source).where(m.Source.name == name))
            if src is None:
                src = m.Source(name=name, type=type_, location=location, created_at=clock.now())
                s.add(src)
                s.flush()
                s.add(m.SourceState(source_id=src.id, consecutive_failures=0))
            elif src.type != type_ or src.location != location:
                src.type, src.location = type_, location
            return src.id

    def file_states(self, source: str, keys: Collection[str] | None = None) -> dict[str, StoredFile]:
        """key → last seen (size, mtime_ns, hash), for incremental reading; only ``keys`` when given (a
        watcher's hints: a few rows instead of every file of the source).

        A Core query on a plain connection (no Session, no ORM rows), values as plain tuples (a frozen
        dataclass each cost as much as the query): a no-op sync of 100,000 files reads every row.
        """
        if keys is not None and not keys:
            return {}
        with self._reader.connect() as conn:
            source_id = conn.scalar(select(m.Source.id).where(m.Source.name == source))
            if source_id is None:
                return {}
            base = (select(m.SourceItem.key, m.SourceItem.size, m.SourceItem.mtime_ns, m.SourceItem.raw_hash)
                    .where(m.SourceItem.source_id == source_id))
            if keys is not None:
                wanted = sorted(set(keys))
                states: dict[str, StoredFile] = {}
                for start in range(0, len(wanted), 500):  # bound parameters per statement
                    chunk = wanted[start : start + 500]
                    rows = conn.execute(base.where(m.SourceItem.key.in_(chunk))).all()
                    states.update((row[0], (row[1], row[2], row[3])) for row in rows)
                conn.rollback()
                return states
            # the driver's own cursor: no result-row objects for 100,000 rows of plain integers and strings
            stmt = base.compile(dialect=conn.dialect)
            params: Any = (stmt.params if conn.dialect.paramstyle in ("named", "pyformat")
                           else [stmt.params[k] for k in stmt.positiontup or ()])
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(str(stmt), params)
                states = {row[0]: (row[1], row[2], row[3]) for row in cursor.fetchall()}
            finally:
                cursor.close()
            conn.rollback()
            return states

    def record_attempt(self, source: str, *, error: str | None, next_due: datetime | None = None) -> None:
        """Store the outcome of a poll in the source state (last success / error, failures, due time)."""
        now = clock.now()
        with self._session() as s, s.begin():
            st = self._state(s, source)
            st.last_attempt = now
            if error is None:
                st.last_success = now
                st.consecutive_failures = 0
            else:
                st.last_error = error
                st.last_error_at = now
                st.consecutive_failures = (st.consecutive_failures or 0) + 1
            if next_due is not None:
                st.next_due = next_due

    def source_status(self) -> list[SourceStatus]:
        with self._reading() as s:
            counts = dict(
                s.execute(
                    select(m.Article.source_id, func.count())
                    .where(m.Article.withdrawn_at.is_(None))
                    .group_by(m.Article.source_id)
                ).all()
            )
            rows = s.execute(select(m.Source, m.SourceState).join(m.SourceState).order_by(m.Source.name)).all()
            return [
                SourceStatus(
                    src.name, src.type, src.location, st.last_attempt, st.last_success, st.last_error,
                    st.consecutive_failures or 0, st.next_due, st.etag, int(counts.get(src.id, 0)), st.disabled_reason,
                    st.current_url, st.last_status,
                )
                for src, st in rows
            ]

    def fetch_state(self, source: str) -> FetchState:
        """The stored HTTP state of a remote source (empty for a new one)."""
        with self._reading() as s:
            st = self._state(s, source)
            return FetchState(
                etag=st.etag, last_modified=st.last_modified, current_url=st.current_url,
                configured_url=st.configured_url, last_status=st.last_status, redirect_target=st.redirect_target,
                redirect_count=st.redirect_count or 0, interval_seconds=st.interval_seconds,
                disabled_reason=st.disabled_reason, consecutive_failures=st.consecutive_failures or 0,
            )

    def save_fetch_state(self, source: str, state: FetchState) -> None:
        """Store a remote source's HTTP state on its own (a 304, or a failed poll that changed it)."""
        with self._session() as s, s.begin():
            st = self._state(s, source)
            self._put_fetch_state(s, st.source_id, state)

    @staticmethod
    def _put_fetch_state(s: Session, source_id: int, state: FetchState) -> None:
        st = s.get(m.SourceState, source_id)
        if st is None:  # pragma: no cover - ensure_source creates it
            raise StorageError(f"source id {source_id} has no state row")
        st.etag, st.last_modified, st.current_url = state.etag, state.last_modified, state.current_url
        st.configured_url, st.last_status = state.configured_url, state.last_status
        st.redirect_target, st.redirect_count = state.redirect_target, state.redirect_count
        st.interval_seconds, st.disabled_reason = state.interval_seconds, state.disabled_reason

    def article_keys(self, source: str) -> set[str]:
        """Keys of the source that already have a stored article (html pages are not fetched again)."""
        with self._reading() as s:
            return set(
                s.scalars(
                    select(m.Article.key).join(m.Source, m.Source.id == m.Article.source_id).where(m.Source.name == source)
                )
            )

    # -- the batch ------------------------------------------------------------------------------
    def save_batch(
        self, source: str, changes: Sequence[ItemChange], deleted: Iterable[str] = (), *,
        fetch_state: FetchState | None = None,
    ) -> BatchResult:
        """Apply one source's changes in one transaction; returns what changed (for re-rendering).

        ``fetch_state`` (a remote source's ETag, URL …) is committed in the same transaction as its articles.
        """
        result = BatchResult()
        now = clock.now()
        deleted = list(deleted)
        try:
            with self._session() as s, s.begin():
                if deleted or any(c.article is not None for c in changes):
                    self._serialize_story_writes(s)
                self._check_bulk(s)  # every batch: the rowid it records at its end must follow a check
                src = s.scalar(select(m.Source).where(m.Source.name == source))
                if src is None:
                    raise StorageError(f"[{source}] source is not registered")
                items = {
                    it.key: it
                    for it in s.scalars(
                        select(m.SourceItem).where(
                            m.SourceItem.source_id == src.id, m.SourceItem.key.in_([c.key for c in changes])
                        )
                    )
                } if changes else {}
                self._prefetch(s, changes)
                missing: set[str] = set(s.info["missing_articles"])
                touched: set[str] = set()
                fresh_items: list[dict[str, object]] = []
                news: dict[str, ItemChange] = {}  # articles not stored yet, stored together below
                for change in changes:
                    st, aid = change.state, change.article.id if change.article is not None else None
                    item = items.get(change.key)
                    if item is None:
                        fresh_items.append({"source_id": src.id, "key": change.key, "size": st.size,
                                            "mtime_ns": st.mtime_ns, "raw_hash": st.raw_hash, "article_id": aid,
                                            "error": change.error})
                    else:
                        item.size, item.mtime_ns, item.raw_hash = st.size, st.mtime_ns, st.raw_hash
                        item.error = change.error
                        if aid is not None:
                            item.article_id = aid
                    if change.article is None:
                        continue
                    if change.article.id in missing:
                        news.pop(change.article.id, None)  # the same article twice in a batch: the last one counts
                        news[change.article.id] = change
                    else:
                        self._apply_article(s, src.id, change.article, now, result, touched)
                if fresh_items:
                    s.execute(insert(m.SourceItem), fresh_items)
                self._store_new(s, src.id, list(news.values()), now, result, touched)
                for key in deleted:
                    self._withdraw(s, src.id, key, now, result, touched)
                self._refresh_stories(s, sorted(touched), now, result)
                if fetch_state is not None:
                    self._put_fetch_state(s, src.id, fetch_state)
                for hook in self.batch_hooks:
                    hook(s, result)
                if self._bulk is not None:
                    self._bulk.last_rowid = self._band_rowid(s)
        except DBAPIError as exc:
            raise StorageError(f"[{source}] database error: {exc.orig}") from None
        if self._bulk is not None:
            self._bulk.commit()
        return result

    def _check_bulk(self, s: Session) -> None:
        """In bulk mode, at the start of a write transaction: leave it (building the index now) when rows
        appeared in ``article_bands`` that this sync did not write, since the map does not know them."""
        bulk = self._bulk
        if bulk is None:
            return
        bulk.pending.clear()  # what a failed transaction recorded never happened
        if self._band_rowid(s) != bulk.last_rowid:
            log.info("articles were indexed by another process during a bulk sync: building the near-duplicate "
                     "index now")
            self._bulk = None
            self._index_bulk(s, bulk.bands)

    def _indexed(self, s: Session, article_id: str) -> bool:
        """Whether the article has its band rows (in bulk mode: its entry in the map)."""
        if self._bulk is not None:
            for aid, bands in reversed(self._bulk.pending):  # this transaction's own changes first
                if aid == article_id:
                    return bool(bands)
            return article_id in self._bulk.bands
        return bool(s.scalar(
            select(func.count()).select_from(m.ArticleBand).where(m.ArticleBand.article_id == article_id)))

    @staticmethod
    def _band_rowid(s: Session) -> int:
        return int(s.scalar(text(f"SELECT coalesce(max(rowid), 0) FROM {_table(m.ArticleBand).name}")) or 0)

    def _apply_article(
        self, s: Session, source_id: int, a: ArticleValue, now: datetime, result: BatchResult, touched: set[str]
    ) -> None:
        """Store one article: new story, member of a stored story, update, or nothing (see dedup.decide)."""
        row = self._article(s, a.id)
        stored = (
            dedup.Stored(row.content_hash, row.title, row.withdrawn_at is not None) if row is not None else None
        )
        curl = dedup.canonical_url(a.link)
        fp: dedup.Fingerprint | None = None
        candidates: list[dedup.Candidate] = []
        if row is None:
            fp = dedup.fingerprint(a.content_text, a.title) if self.thresholds.enabled else None
            candidates = self._candidates(s, a, curl, fp)
        name = self._source_name(s, source_id)  # the batch's source decides "same source", whatever a.source says
        decision = dedup.decide(a if a.source == name else replace(a, source=name), stored, candidates, self.thresholds)
        if isinstance(decision, dedup.Unchanged):
            result.unchanged += 1
            assert row is not None
            changed = self._set_tags(s, a.id, a.tags)  # rules may have changed; tags are cheap to refresh
            if _shown(row) != _shown(a) or (a.date_source != "file_mtime" and row.published != a.published):
                # only spacing, punctuation or the byline moved, or the file now states another date (a
                # corrected scrape; a date taken from the file's mtime never moves a stored one): keep the
                # new form, but `updated` stays where it is
                self._fill(row, a, curl)
                changed = True
            if self.thresholds.enabled and not self._indexed(s, a.id):
                self._index(s, a.id, dedup.fingerprint(a.content_text, a.title))  # stored before the index existed
            if changed:
                touched.add(row.story_id)
            return
        if isinstance(decision, dedup.Update):
            assert row is not None
            result.updated += 1
            if decision.text_changed:
                s.add(
                    m.ArticleVersion(
                        article_id=row.id, version=row.version, title=row.title, published=row.published,
                        content_html=row.content_html, content_text=row.content_text,
                        content_hash=row.content_hash, recorded_at=now,
                    )
                )
                row.version += 1
                row.updated = max(a.updated or now, row.updated or row.published)  # forward only
                row.last_changed = now
            self._fill(row, a, curl)
            row.withdrawn_at = None
            self._set_tags(s, a.id, a.tags)
            if self.thresholds.enabled:
                self._index(s, a.id, dedup.fingerprint(a.content_text, a.title))
            touched.add(row.story_id)
            return
        if isinstance(decision, dedup.DuplicateOf):
            result.duplicates += 1
            story_id = decision.story_id
            log.debug("%s: same story as %s (%s)", a.source_path or a.key, decision.article_id, decision.how)
        else:
            result.new += 1
            story_id = decision.story_id
            if story_id in s.info.get("absent_stories", ()) or s.get(m.Story, story_id) is None:
                s.add(m.Story(id=story_id, canonical_article_id=a.id, published=a.published,
                              updated=a.updated or a.published, member_count=1, withdrawn=False, changed_at=now))
                s.flush()
        row = m.Article(id=a.id, source_id=source_id, key=a.key, story_id=story_id, version=1, first_seen=now,
                        last_changed=now)
        self._fill(row, a, curl)
        row.updated = a.updated
        s.add(row)
        for i, v in enumerate(a.earlier_versions, start=1):
            s.add(m.ArticleVersion(article_id=a.id, version=i, title=v.title, published=v.published,
                                   content_html=v.content_html, content_text=v.content_text,
                                   content_hash=v.content_hash, recorded_at=now))
        row.version = len(a.earlier_versions) + 1
        s.flush()
        if fp is not None:
            self._index(s, a.id, fp)
        self._set_tags(s, a.id, a.tags)
        touched.add(story_id)

    def _store_new(
        self, s: Session, source_id: int, changes: Sequence[ItemChange], now: datetime, result: BatchResult,
        touched: set[str],
    ) -> None:
        """Store the batch's articles that have no stored row: the same decisions as ``_apply_article`` one
        by one, with a few queries per batch instead of several per article.

        Candidates in the database are looked up for the whole batch at once (by hash, by URL, by LSH band);
        an article may also join one stored earlier in the same batch, which is matched in memory; then
        every row goes in with one multi-row insert per table. A cold sync is mostly this function.
        """
        if not changes:
            return
        t = self.thresholds
        name = self._source_name(s, source_id)
        prepared: list[tuple[ArticleValue, str | None, dedup.Fingerprint | None]] = []
        for c in changes:
            a = c.article
            assert a is not None
            if a.source != name:  # the batch's source decides "same source", whatever a.source says
                a = replace(a, source=name)
            fp = (c.fingerprint or dedup.fingerprint(a.content_text, a.title)) if t.enabled else None
            prepared.append((a, dedup.canonical_url(a.link), fp))
        self._create_tags(s, [n for a, _, _ in prepared for n in a.tags if n])
        found = _BatchCandidates(self, s, prepared)
        absent: set[str] = s.info.get("absent_stories", set())
        stories: list[dict[str, object]] = []
        rows: list[dict[str, object]] = []
        versions: list[dict[str, object]] = []
        bands: list[tuple[str, int, int]] = []
        tags: list[tuple[str, int]] = []
        for a, curl, fp in prepared:
            decision = dedup.decide(a, None, found.candidates(a, curl, fp), t, fp)
            if isinstance(decision, dedup.DuplicateOf):
                result.duplicates += 1
                log.debug("%s: same story as %s (%s)", a.source_path or a.key, decision.article_id, decision.how)
            else:
                assert isinstance(decision, dedup.New)
                result.new += 1
                if decision.story_id in absent:
                    absent.discard(decision.story_id)
                    stories.append({"id": decision.story_id, "canonical_article_id": a.id, "published": a.published,
                                    "updated": a.updated or a.published, "member_count": 1, "withdrawn": False,
                                    "changed_at": now})
            story_id = decision.story_id
            found.add(a, curl, fp, story_id)
            rows.append({
                "id": a.id, "source_id": source_id, "key": a.key, "story_id": story_id, "title": a.title,
                "original_title": a.original_title, "channel": a.channel, "published": a.published,
                "updated": a.updated, "date_source": a.date_source, "author": a.author, "submitter": a.submitter,
                "publisher": a.publisher, "summary": a.summary, "content_html": a.content_html,
                "content_text": a.content_text, "link": a.link, "canonical_url": curl, "source_path": a.source_path,
                "content_hash": a.content_hash, "version": len(a.earlier_versions) + 1, "first_seen": now,
                "last_changed": now, "withdrawn_at": None,
            })
            versions.extend(
                {"article_id": a.id, "version": i, "title": v.title, "published": v.published,
                 "content_html": v.content_html, "content_text": v.content_text, "content_hash": v.content_hash,
                 "recorded_at": now}
                for i, v in enumerate(a.earlier_versions, start=1)
            )
            if fp is not None:
                if self._bulk is not None:  # the map has them, and they are written at the end of bulk mode
                    self._bulk.pending.append((a.id, fp.bands))
                else:
                    bands.extend(zip(itertools.repeat(a.id), range(len(fp.bands)), fp.bands, strict=False))
            tags.extend((a.id, tid) for tid in dict.fromkeys(self._tag_id(s, n) for n in dict.fromkeys(a.tags) if n))
            touched.add(story_id)
        conn = s.connection()  # Core inserts on the tables: the ORM's bulk path costs as much again per row
        for model, values in ((m.Story, stories), (m.Article, rows), (m.ArticleVersion, versions)):
            for start in range(0, len(values), 5000):
                conn.execute(insert(_table(model)), values[start : start + 5000])
        _insert_plain(s, m.ArticleBand, _BAND_COLUMNS, bands)
        _insert_plain(s, m.ArticleTag, ("article_id", "tag_id"), tags)

    def _candidates(
        self, s: Session, a: ArticleValue, curl: str | None, fp: dedup.Fingerprint | None
    ) -> list[dedup.Candidate]:
        """Live articles that may be the same story: same hash or URL (indexed), or sharing an LSH band.

        The band lookup goes through ``ix_article_bands_key`` and returns at most ``max_candidates``
        articles, those sharing the most bands first: the cost does not grow with the table.
        """
        cond = m.Article.content_hash == a.content_hash
        if curl:
            cond = cond | (m.Article.canonical_url == curl)
        out = [
            dedup.Candidate(aid, sid, h, cu, title=title, source=src)
            for aid, sid, h, cu, title, src in s.execute(
                select(m.Article.id, m.Article.story_id, m.Article.content_hash, m.Article.canonical_url,
                       m.Article.title, m.Source.name)
                .join(m.Source, m.Source.id == m.Article.source_id)
                .where(cond, m.Article.withdrawn_at.is_(None))
                .order_by(m.Article.id)
                .limit(20)
            )
        ]
        if out or fp is None or not fp.bands or fp.size < self.thresholds.min_shingles:
            return out
        shared = (
            select(m.ArticleBand.article_id, func.count().label("n"))
            .where(m.ArticleBand.band_key.in_(fp.bands), m.ArticleBand.article_id != a.id)
            .group_by(m.ArticleBand.article_id)
            .having((func.count() >= dedup.MIN_BAND_MATCHES) | (func.max(m.ArticleBand.band_no) == dedup.TITLE_BAND))
            .order_by(func.count().desc(), m.ArticleBand.article_id)
            .limit(self.thresholds.max_candidates)
            .subquery()
        )
        rows = s.execute(
            select(m.Article.id, m.Article.story_id, m.Article.content_hash, m.Article.canonical_url,
                   m.Article.content_text, shared.c.n, m.Article.title, m.Source.name)
            .join(shared, shared.c.article_id == m.Article.id)
            .join(m.Source, m.Source.id == m.Article.source_id)
            .where(m.Article.withdrawn_at.is_(None))
        )
        return [dedup.Candidate(aid, sid, h, cu, text, int(n), title, src)
                for aid, sid, h, cu, text, n, title, src in rows]

    def bulk_load(self, source: str, articles: Sequence[ArticleValue]) -> int:
        """Store articles known to be distinct stories, one story each, indexed: no duplicate look-up.

        For importing a set that was deduplicated elsewhere, and for filling benchmark databases with
        100,000 articles in minutes; `save_batch` is the path for anything that may repeat a story.
        Returns the number stored (articles whose id is already stored are skipped).
        """
        now = clock.now()
        with self._session() as s, s.begin():
            src = s.scalar(select(m.Source).where(m.Source.name == source))
            if src is None:
                raise StorageError(f"[{source}] source is not registered")
            ids = [a.id for a in articles]
            have = set(s.scalars(select(m.Article.id).where(m.Article.id.in_(ids)))) if ids else set()
            fresh = [a for a in dict((a.id, a) for a in articles).values() if a.id not in have]
            if not fresh:
                return 0
            stories: list[dict[str, object]] = []
            rows: list[dict[str, object]] = []
            bands: list[dict[str, object]] = []
            article_tags: list[dict[str, object]] = []
            story_tags: list[dict[str, object]] = []
            for a in fresh:
                sid = dedup.story_id_for(a.id)
                stories.append({"id": sid, "canonical_article_id": a.id, "published": a.published,
                                "updated": a.updated or a.published, "member_count": 1, "withdrawn": False,
                                "changed_at": now})
                rows.append({
                    "id": a.id, "source_id": src.id, "key": a.key, "story_id": sid, "title": a.title,
                    "original_title": a.original_title, "channel": a.channel, "published": a.published,
                    "updated": a.updated, "date_source": a.date_source, "author": a.author,
                    "submitter": a.submitter, "publisher": a.publisher, "summary": a.summary,
                    "content_html": a.content_html, "content_text": a.content_text, "link": a.link,
                    "canonical_url": dedup.canonical_url(a.link), "source_path": a.source_path,
                    "content_hash": a.content_hash, "version": 1, "first_seen": now, "last_changed": now,
                })
                if self.thresholds.enabled:
                    fp = dedup.fingerprint(a.content_text, a.title)
                    bands.extend({"article_id": a.id, "band_no": i, "band_key": k} for i, k in enumerate(fp.bands))
                for tid in {self._tag_id(s, n) for n in a.tags if n}:
                    article_tags.append({"article_id": a.id, "tag_id": tid})
                    story_tags.append({"story_id": sid, "tag_id": tid, "published": a.published})
            for table, values in ((m.Story, stories), (m.Article, rows), (m.ArticleBand, bands),
                                  (m.ArticleTag, article_tags), (m.StoryTag, story_tags)):
                if values:
                    s.execute(insert(table), values)
            return len(fresh)

    def _index(self, s: Session, article_id: str, fp: dedup.Fingerprint) -> None:
        """(Re)write the article's LSH band rows (in bulk mode: its entry in the map, written at the end)."""
        if self._bulk is not None:
            self._bulk.pending.append((article_id, fp.bands))
            return
        s.execute(delete(m.ArticleBand).where(m.ArticleBand.article_id == article_id))
        if fp.bands:
            s.execute(
                insert(m.ArticleBand),
                [{"article_id": article_id, "band_no": i, "band_key": k} for i, k in enumerate(fp.bands)],
            )

    def find_duplicates(self, a: ArticleValue) -> dedup.Decision:
        """What storing ``a`` would decide, without storing it (bench and `stories` diagnostics)."""
        with self._reading() as s:
            row = s.get(m.Article, a.id)
            stored = (
                dedup.Stored(row.content_hash, row.title, row.withdrawn_at is not None) if row is not None else None
            )
            fp = dedup.fingerprint(a.content_text, a.title) if row is None and self.thresholds.enabled else None
            cands = self._candidates(s, a, dedup.canonical_url(a.link), fp) if row is None else []
            return dedup.decide(a, stored, cands, self.thresholds)

    @staticmethod
    def _fill(row: m.Article, a: ArticleValue, curl: str | None) -> None:
        row.title, row.original_title, row.channel = a.title, a.original_title, a.channel
        row.published, row.date_source = a.published, a.date_source
        row.author, row.submitter, row.publisher = a.author, a.submitter, a.publisher
        row.summary, row.content_html, row.content_text = a.summary, a.content_html, a.content_text
        row.link, row.canonical_url, row.source_path, row.content_hash = a.link, curl, a.source_path, a.content_hash

    def _set_tags(self, s: Session, article_id: str, names: Sequence[str]) -> bool:
        """Make the article's tags exactly ``names``; True when they changed."""
        wanted = {self._tag_id(s, n) for n in dict.fromkeys(names) if n}
        prefetched: dict[str, set[int]] = s.info.get("article_tags", {})
        if article_id in prefetched:
            have = prefetched.pop(article_id)
        else:
            have = set(s.scalars(select(m.ArticleTag.tag_id).where(m.ArticleTag.article_id == article_id)))
        if have - wanted:
            s.execute(delete(m.ArticleTag).where(m.ArticleTag.article_id == article_id,
                                                 m.ArticleTag.tag_id.in_(have - wanted)))
        for tid in wanted - have:
            s.add(m.ArticleTag(article_id=article_id, tag_id=tid))
        return wanted != have

    def _create_tags(self, s: Session, names: Iterable[str]) -> None:
        """Create the tags of ``names`` not known yet, with one insert (a cold sync meets hundreds of them).

        Slugs get the same ``-2``, ``-3`` … suffixes ``_tag_id`` gives when two names slugify alike.
        """
        cache: dict[str, int] = s.info.setdefault("tag_ids", {})
        fresh = [n for n in dict.fromkeys(names) if n not in cache]
        if not fresh:
            return
        from ..normalize.tags import slugify  # pypinyin's tables take a second to load: only for new tags

        known = {name: tid for name, tid in s.execute(select(m.Tag.name, m.Tag.id).where(m.Tag.name.in_(fresh)))}
        cache.update(known)
        fresh = [n for n in fresh if n not in known]
        if not fresh:
            return
        taken = set(s.scalars(select(m.Tag.slug)))
        rows = []
        for name in fresh:
            base = slugify(name) or "tag"
            slug, n = base, 1
            while slug in taken:
                n += 1
                slug = f"{base}-{n}"
            taken.add(slug)
            rows.append({"name": name, "slug": slug})
        for start in range(0, len(rows), 500):
            s.connection().execute(insert(_table(m.Tag)), rows[start : start + 500])
        for start in range(0, len(fresh), 500):
            chunk = fresh[start : start + 500]
            cache.update({name: tid for name, tid in s.execute(select(m.Tag.name, m.Tag.id).where(m.Tag.name.in_(chunk)))})

    def _tag_id(self, s: Session, name: str) -> int:
        """The tag's id, created (with its slug) when it is new: ``_create_tags`` for one name."""
        cache: dict[str, int] = s.info.setdefault("tag_ids", {})
        if name not in cache:
            self._create_tags(s, [name])
        return cache[name]

    # -- batch prefetching: a few queries per batch instead of several per article ----------------------
    def _prefetch(self, s: Session, changes: Sequence[ItemChange]) -> None:
        """Load the batch's stored articles, their tags and every tag id up front.

        ``_article`` then answers from the session (known misses included), ``_set_tags`` from the map;
        the loaded rows are kept referenced in ``s.info`` so the identity map holds them for the batch.
        """
        ids = list(dict.fromkeys(c.article.id for c in changes if c.article is not None))
        loaded: list[m.Article] = []
        article_tags: dict[str, set[int]] = {i: set() for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            loaded.extend(s.scalars(select(m.Article).where(m.Article.id.in_(chunk))))
            for aid, tid in s.execute(select(m.ArticleTag.article_id, m.ArticleTag.tag_id)
                                      .where(m.ArticleTag.article_id.in_(chunk))):
                article_tags[aid].add(tid)
        s.info["loaded_articles"] = loaded
        found = {a.id for a in loaded}
        missing = [i for i in ids if i not in found]
        s.info["missing_articles"] = set(missing)
        # stories the batch's new articles would found that do not exist yet: no s.get per new story
        founded = {dedup.story_id_for(i): i for i in missing}
        keys = list(founded)
        existing: set[str] = set()
        for start in range(0, len(keys), 500):
            existing.update(s.scalars(select(m.Story.id).where(m.Story.id.in_(keys[start : start + 500]))))
        s.info["absent_stories"] = set(keys) - existing
        s.info["article_tags"] = article_tags
        s.info.setdefault("tag_ids", {}).update({name: tid for name, tid in s.execute(select(m.Tag.name, m.Tag.id))})

    @staticmethod
    def _article(s: Session, article_id: str) -> m.Article | None:
        """``s.get`` that skips the query for an article the prefetch found missing (the first time)."""
        missing: set[str] = s.info.get("missing_articles", set())
        if article_id in missing:
            missing.discard(article_id)
            return None
        return s.get(m.Article, article_id)

    def _refresh_stories(self, s: Session, story_ids: Sequence[str], now: datetime, result: BatchResult) -> None:
        """``_refresh_story`` for many stories with a handful of queries per 500 (same results)."""
        for start in range(0, len(story_ids), 500):
            chunk = list(story_ids[start : start + 500])
            stories = {st.id: st for st in s.scalars(select(m.Story).where(m.Story.id.in_(chunk)))}
            # the members' few columns, not ORM objects: loading every member's text cost more than the rest
            members: dict[str, list[_Member]] = {}
            for row in s.execute(
                select(m.Article.id, m.Article.story_id, m.Article.published, m.Article.updated,
                       func.length(m.Article.content_text))
                .where(m.Article.story_id.in_(chunk), m.Article.withdrawn_at.is_(None))
            ):
                members.setdefault(row[1], []).append(_Member(row[0], row[2], row[3], int(row[4] or 0)))
            old: dict[str, set[int]] = {}
            for sid, tid in s.execute(select(m.StoryTag.story_id, m.StoryTag.tag_id).where(m.StoryTag.story_id.in_(chunk))):
                old.setdefault(sid, set()).add(tid)
            member_ids = [a.id for group in members.values() for a in group]
            art_tags: dict[str, set[int]] = {}
            for m_start in range(0, len(member_ids), 500):
                for aid, tid in s.execute(select(m.ArticleTag.article_id, m.ArticleTag.tag_id)
                                          .where(m.ArticleTag.article_id.in_(member_ids[m_start : m_start + 500]))):
                    art_tags.setdefault(aid, set()).add(tid)
            s.execute(delete(m.StoryTag).where(m.StoryTag.story_id.in_(chunk)))
            rows: list[dict[str, object]] = []
            changed_tags: set[int] = set()
            for sid in chunk:
                story = stories.get(sid)
                if story is None:
                    continue
                group = members.get(sid, [])
                result.changed_stories.add(sid)
                story.changed_at = now
                changed_tags |= old.get(sid, set())
                if not group:
                    story.withdrawn = True
                    story.member_count = 0
                    continue
                canonical = min(group, key=lambda a: (a.published, -a.text_length, a.id))
                # as in _refresh_story: only the canonical member's real edits move `updated`, forward only
                shown = canonical.updated or canonical.published
                if story.canonical_article_id == canonical.id and story.updated is not None:
                    shown = max(shown, story.updated)
                story.canonical_article_id = canonical.id
                if story.published != canonical.published:
                    result.moved_from.add(story.published)
                story.published = canonical.published
                story.updated = shown
                story.member_count = len(group)
                story.withdrawn = False
                tag_ids = set().union(*(art_tags.get(a.id, set()) for a in group))
                rows.extend({"story_id": sid, "tag_id": tid, "published": story.published} for tid in sorted(tag_ids))
                changed_tags |= tag_ids
            if rows:
                s.execute(insert(m.StoryTag), rows)
            result.changed_tags |= self._slugs(s, changed_tags)

    def _withdraw(self, s: Session, source_id: int, key: str, now: datetime, result: BatchResult, touched: set[str]) -> None:
        s.execute(delete(m.SourceItem).where(m.SourceItem.source_id == source_id, m.SourceItem.key == key))
        row = s.scalar(select(m.Article).where(m.Article.source_id == source_id, m.Article.key == key))
        if row is not None and row.withdrawn_at is None:
            row.withdrawn_at = now
            s.execute(delete(m.ArticleBand).where(m.ArticleBand.article_id == row.id))  # not a candidate any more
            if self._bulk is not None:
                self._bulk.pending.append((row.id, ()))
            result.withdrawn += 1
            touched.add(row.story_id)

    def _refresh_story(self, s: Session, story_id: str, now: datetime, result: BatchResult) -> None:
        """Recompute a story from its live members: canonical member, dates, tags, withdrawal."""
        story = s.get(m.Story, story_id)
        if story is None:
            return
        members = list(s.scalars(select(m.Article).where(m.Article.story_id == story_id, m.Article.withdrawn_at.is_(None))))
        old_tags = set(s.scalars(select(m.StoryTag.tag_id).where(m.StoryTag.story_id == story_id)))
        if not members:
            story.withdrawn = True
            story.member_count = 0
            s.execute(delete(m.StoryTag).where(m.StoryTag.story_id == story_id))
            story.changed_at = now
            result.changed_stories.add(story_id)
            result.changed_tags |= self._slugs(s, old_tags)
            return
        canonical = min(members, key=lambda a: (a.published, -len(a.content_text), a.id))
        # The entry shows the canonical member: only its real edits move `updated` (forward only). A new
        # channel re-posting the story changes "also in", not the news, and must not re-surface the entry.
        shown = canonical.updated or canonical.published
        if story.canonical_article_id == canonical.id and story.updated is not None:
            shown = max(shown, story.updated)
        story.canonical_article_id = canonical.id
        if story.published != canonical.published:
            result.moved_from.add(story.published)
        story.published = canonical.published
        story.updated = shown
        story.member_count = len(members)
        story.withdrawn = False
        story.changed_at = now
        tag_ids = set(
            s.scalars(select(m.ArticleTag.tag_id).where(m.ArticleTag.article_id.in_([a.id for a in members])))
        )
        s.execute(delete(m.StoryTag).where(m.StoryTag.story_id == story_id))
        for tid in sorted(tag_ids):
            s.add(m.StoryTag(story_id=story_id, tag_id=tid, published=story.published))
        result.changed_stories.add(story_id)
        result.changed_tags |= self._slugs(s, old_tags | tag_ids)

    @staticmethod
    def _slugs(s: Session, tag_ids: set[int]) -> set[str]:
        if not tag_ids:
            return set()
        return set(s.scalars(select(m.Tag.slug).where(m.Tag.id.in_(tag_ids))))

    # -- reading for outputs --------------------------------------------------------------------
    def tags(self) -> list[TagInfo]:
        """Every tag with at least one live story, with its story count and newest story date."""
        # count(*) (story_id is part of the primary key, never NULL): read from the (tag_id, published) index
        # alone, without a table look-up per story; grouped by tag id before the join, so the 200,000 rows
        # of 100,000 stories are not joined with their tag's name first (0.085 → 0.05 s on SQLite, same rows)
        counts = (select(m.StoryTag.tag_id, func.count().label("stories"),
                         func.max(m.StoryTag.published).label("newest"))
                  .group_by(m.StoryTag.tag_id).subquery())
        with self._reading() as s:
            rows = s.execute(
                select(m.Tag.name, m.Tag.slug, counts.c.stories, counts.c.newest)
                .join(counts, counts.c.tag_id == m.Tag.id)
                .order_by(m.Tag.slug)
            ).all()
            return [TagInfo(n, sl, int(c), mx) for n, sl, c, mx in rows]

    def story_count(self) -> int:
        with self._reading() as s:
            return int(s.scalar(select(func.count()).select_from(m.Story).where(m.Story.withdrawn.is_(False))) or 0)

    def feed_entries(self, tag_slug: str | None, limit: int, base_url: str) -> list[StoryEntry]:
        """The newest ``limit`` live stories (of one tag, or all), as feed entries."""
        with self._reading() as s:
            q = select(*_STORY).where(_LIVE)
            if tag_slug is not None:
                q = (
                    select(*_STORY)
                    .join(m.StoryTag, m.StoryTag.story_id == m.Story.id)
                    .join(m.Tag, m.Tag.id == m.StoryTag.tag_id)
                    .where(m.Tag.slug == tag_slug, _LIVE)
                )
            stories = s.execute(q.order_by(m.Story.published.desc(), m.Story.id).limit(limit)).all()
            return self._entries(s, stories, base_url)

    def feed_entries_many(self, slugs: Sequence[str], limit: int, base_url: str) -> dict[str, list[StoryEntry]]:
        """``feed_entries`` for several tags in three queries instead of three per tag (a full render of
        hundreds of tags); a story shared by several tags is loaded once. Same entries, same order."""
        if not slugs:
            return {}
        with self._reading() as s:
            tag_ids = {slug: tid for slug, tid in s.execute(select(m.Tag.slug, m.Tag.id).where(m.Tag.slug.in_(list(slugs))))}
            picked = [(slug, sid) for slug in sorted(tag_ids) for sid in self._newest_of_tag(s, tag_ids[slug], limit)]
            ids = sorted({sid for _, sid in picked})
            by_id: dict[str, StoryEntry] = {}
            for start in range(0, len(ids), 500):
                stories = s.execute(select(*_STORY).where(m.Story.id.in_(ids[start : start + 500]))).all()
                by_id.update((e.story_id, e) for e in self._entries(s, stories, base_url))
            out: dict[str, list[StoryEntry]] = {slug: [] for slug in slugs}
            for slug, sid in picked:
                if sid in by_id:
                    out[slug].append(by_id[sid])
            return out

    @staticmethod
    def _newest_of_tag(s: Session, tag_id: int, limit: int) -> list[str]:
        """The ids of a tag's newest ``limit`` live stories, newest first.

        Walks ``ix_story_tags_tag_published`` from the newest end and stops after ``limit`` rows, where ranking
        the tag's stories (a window query) read all of them: 24,000 for the largest tag of 100,000 posts.
        ``story_tags.published`` is the story's ``published`` (the repository writes them together)."""
        return list(s.scalars(
            select(m.StoryTag.story_id)
            .join(m.Story, m.Story.id == m.StoryTag.story_id)
            .where(m.StoryTag.tag_id == tag_id, _LIVE)
            .order_by(m.StoryTag.published.desc(), m.StoryTag.story_id)
            .limit(limit)
        ))

    def _entries(self, s: Session, stories: Sequence[Any], base_url: str, *,
                 content: bool = True, ids_of: Select[Any] | None = None) -> list[StoryEntry]:
        """Feed entries of ``stories`` (rows of ``_STORY``), in their order.

        Plain column rows, not ORM objects (a full render makes 100,000 of these); the members' plain text,
        the largest column, is never read, nor their HTML unless ``content``. ``ids_of``: a query of the
        same stories' ids, used instead of listing thousands of ids in the members' and tags' queries (a
        busy day's digest)."""
        if not stories:
            return []
        ids: Select[Any] | list[str] = ids_of if ids_of is not None else [st.id for st in stories]
        members: dict[str, list[Any]] = {}
        for a in s.execute(
            select(*_MEMBER, *((m.Article.content_html,) if content else ()))
            .where(m.Article.story_id.in_(ids), m.Article.withdrawn_at.is_(None)).order_by(m.Article.published, m.Article.id)
        ):
            members.setdefault(a.story_id, []).append(a)
        tags: dict[str, list[TagValue]] = {}
        values: dict[tuple[str, str], TagValue] = {}  # one value per tag, not one per row
        for sid, name, slug in s.execute(
            select(m.StoryTag.story_id, m.Tag.name, m.Tag.slug)
            .join(m.Tag, m.Tag.id == m.StoryTag.tag_id)
            .where(m.StoryTag.story_id.in_(ids))
            .order_by(m.Tag.name)
        ):
            tag = values.get((name, slug))
            if tag is None:
                tag = values[(name, slug)] = TagValue(name, slug)
            tags.setdefault(sid, []).append(tag)
        out: list[StoryEntry] = []
        for st in stories:
            group = members.get(st.id, [])
            canon = next((a for a in group if a.id == st.canonical_article_id), group[0] if group else None)
            if canon is None:
                continue
            page = f"{base_url}articles/{st.id}.html"
            others = []
            seen: set[str] = set()
            for a in group:
                if a.id == canon.id:
                    continue
                label = a.channel or a.publisher or self._source_name(s, a.source_id)
                if label in seen or label == (canon.channel or ""):
                    continue
                seen.add(label)
                others.append(Carrier(label, a.link))
            out.append(
                StoryEntry(
                    story_id=st.id, title=canon.title, link=canon.link or page, published=st.published,
                    updated=max(st.updated, st.published), author=canon.author, summary=canon.summary,
                    content_html=canon.content_html if content else "", tags=tuple(tags.get(st.id, ())),
                    channel=canon.channel,
                    also_in=tuple(others),
                )
            )
        return out

    def _source_name(self, s: Session, source_id: int) -> str:
        cache: dict[int, str] = s.info.setdefault("source_names", {})
        if source_id not in cache:
            cache[source_id] = s.scalar(select(m.Source.name).where(m.Source.id == source_id)) or "?"
        return cache[source_id]

    def all_story_ids(self) -> list[str]:
        with self._reading() as s:
            return list(s.scalars(select(m.Story.id).where(_LIVE).order_by(m.Story.id)))

    def entries_by_ids(self, story_ids: Sequence[str], base_url: str) -> list[StoryEntry]:
        with self._reading() as s:
            stories = s.execute(
                select(*_STORY).where(m.Story.id.in_(list(story_ids)), m.Story.withdrawn.is_(False))
            ).all()
            return self._entries(s, stories, base_url)

    def iter_articles(self, tag: str | None = None, limit: int | None = None) -> Iterator[dict[str, object]]:
        """Live articles as JSON-ready dicts, newest first (``syndicator articles --json``)."""
        with self._reading() as s:
            q = select(m.Article, m.Source.name, m.Story.canonical_article_id).join(
                m.Source, m.Source.id == m.Article.source_id
            ).join(m.Story, m.Story.id == m.Article.story_id).where(m.Article.withdrawn_at.is_(None))
            if tag is not None:
                q = q.join(m.ArticleTag, m.ArticleTag.article_id == m.Article.id).join(
                    m.Tag, m.Tag.id == m.ArticleTag.tag_id
                ).where((m.Tag.name == tag) | (m.Tag.slug == tag))
            q = q.order_by(m.Article.published.desc(), m.Article.id)
            if limit is not None:
                q = q.limit(limit)
            rows = s.execute(q).all()
            ids = [a.id for a, _, _ in rows]
            tag_names: dict[str, list[str]] = {}
            for chunk_start in range(0, len(ids), 500):
                chunk = ids[chunk_start : chunk_start + 500]
                for aid, name in s.execute(
                    select(m.ArticleTag.article_id, m.Tag.name).join(m.Tag).where(m.ArticleTag.article_id.in_(chunk)).order_by(m.Tag.name)
                ):
                    tag_names.setdefault(aid, []).append(name)
            for a, source_name, canonical_id in rows:
                yield {
                    "id": a.id, "story_id": a.story_id, "duplicate_of": None if canonical_id == a.id else canonical_id,
                    "source": source_name, "source_path": a.source_path, "link": a.link, "title": a.title,
                    "original_title": a.original_title, "channel": a.channel,
                    "published": a.published.isoformat(), "updated": (a.updated or a.published).isoformat(),
                    "date_source": a.date_source, "author": a.author, "submitter": a.submitter,
                    "publisher": a.publisher, "summary": a.summary, "content_html": a.content_html,
                    "content_text": a.content_text, "tags": tag_names.get(a.id, []), "version": a.version,
                }

    def iter_stories(self, min_members: int = 1, limit: int | None = None) -> Iterator[dict[str, object]]:
        """Live stories with their live members, newest first (``syndicator stories --json``)."""
        with self._reading() as s:
            q = (
                select(m.Story)
                .where(m.Story.withdrawn.is_(False), m.Story.member_count >= min_members)
                .order_by(m.Story.published.desc(), m.Story.id)
            )
            if limit is not None:
                q = q.limit(limit)
            stories = list(s.scalars(q))
            for start in range(0, len(stories), 500):
                chunk = stories[start : start + 500]
                members: dict[str, list[tuple[m.Article, str]]] = {}
                for a, source_name in s.execute(
                    select(m.Article, m.Source.name)
                    .join(m.Source, m.Source.id == m.Article.source_id)
                    .where(m.Article.story_id.in_([st.id for st in chunk]), m.Article.withdrawn_at.is_(None))
                    .order_by(m.Article.published, m.Article.id)
                ):
                    members.setdefault(a.story_id, []).append((a, source_name))
                tags: dict[str, list[str]] = {}
                for sid, name in s.execute(
                    select(m.StoryTag.story_id, m.Tag.name)
                    .join(m.Tag, m.Tag.id == m.StoryTag.tag_id)
                    .where(m.StoryTag.story_id.in_([st.id for st in chunk]))
                    .order_by(m.Tag.name)
                ):
                    tags.setdefault(sid, []).append(name)
                for st in chunk:
                    group = members.get(st.id, [])
                    canon = next((a for a, _ in group if a.id == st.canonical_article_id), None)
                    yield {
                        "story_id": st.id, "title": canon.title if canon else None,
                        "canonical_article_id": st.canonical_article_id,
                        "published": st.published.isoformat(), "updated": st.updated.isoformat(),
                        "member_count": len(group), "tags": tags.get(st.id, []),
                        "members": [
                            {"id": a.id, "title": a.title, "channel": a.channel, "source": source_name,
                             "source_path": a.source_path, "link": a.link, "published": a.published.isoformat(),
                             "duplicate_of": None if a.id == st.canonical_article_id else st.canonical_article_id}
                            for a, source_name in group
                        ],
                    }

    def article_versions(self, article_id: str) -> list[tuple[int, str, str]]:
        with self._reading() as s:
            return [
                (v, t, h)
                for v, t, h in s.execute(
                    select(m.ArticleVersion.version, m.ArticleVersion.title, m.ArticleVersion.content_hash)
                    .where(m.ArticleVersion.article_id == article_id)
                    .order_by(m.ArticleVersion.version)
                )
            ]

    def counts(self) -> dict[str, int]:
        """Row counts per table (tests and `status`)."""
        with self._reading() as s:
            return {
                t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
                for t in (m.Source, m.SourceItem, m.Article, m.ArticleVersion, m.Story, m.Tag, m.ArticleTag, m.StoryTag)
            }

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _serialize_story_writes(s: Session) -> None:
        """Batches that add or change articles take turns (until their commit) on PostgreSQL.

        Deduplication looks for the stories an article joins among *committed* rows; two workers storing
        the same news at the same moment would each miss the other's and make two stories. Only the short
        write transaction waits: reading and normalizing still run in parallel. SQLite's ``BEGIN IMMEDIATE``
        already has one writer at a time.
        """
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(727002)"))

    def _session(self) -> Session:
        """A session for a write transaction (``with self._session() as s, s.begin():``)."""
        return Session(self.engine, expire_on_commit=False)

    def _reading(self) -> Session:
        """A session that only reads: it never waits for a writer (``engine.reader``), so a render reads on
        while another process (the end of a first sync's bulk mode, another sync) writes."""
        return Session(self._reader, expire_on_commit=False)

    def after_fork(self) -> None:
        """In a forked copy of this process (``forked.start``): leave the pooled connections to the parent
        (a connection used by two processes mixes their conversations) and open new ones."""
        self.engine.dispose(close=False)

    @staticmethod
    def _state(s: Session, source: str) -> m.SourceState:
        st = s.scalar(select(m.SourceState).join(m.Source).where(m.Source.name == source))
        if st is None:
            raise StorageError(f"[{source}] source is not registered")
        return st

    def set_next_due(self, source: str, when: datetime) -> None:
        with self._session() as s, s.begin():
            s.execute(
                update(m.SourceState)
                .where(m.SourceState.source_id == select(m.Source.id).where(m.Source.name == source).scalar_subquery())
                .values(next_due=when)
            )

    # -- the service (`syndicator run`) ---------------------------------------------------------
    def due_sources(self, names: Sequence[str], now: datetime) -> list[str]:
        """Of ``names``, the sources whose next poll is due (never polled, or next_due ≤ now), oldest first."""
        if not names:
            return []
        with self._reading() as s:
            rows = s.execute(
                select(m.Source.name, m.SourceState.next_due)
                .join(m.SourceState, m.SourceState.source_id == m.Source.id)
                .where(m.Source.name.in_(list(names)))
                .where(m.SourceState.next_due.is_(None) | (m.SourceState.next_due <= now))
            ).all()
        epoch = datetime.min.replace(tzinfo=now.tzinfo)
        return [n for n, _ in sorted(rows, key=lambda r: (r[1] or epoch, r[0]))]

    def schedule_state(self, source: str) -> tuple[int, datetime | None]:
        """(consecutive failures, next due) of a registered source."""
        with self._reading() as s:
            st = self._state(s, source)
            return st.consecutive_failures or 0, st.next_due

    def service_started(self, role: str, holder: str) -> None:
        """Record that ``holder`` (host:pid) now runs ``role``; call while holding the service lock."""
        now = clock.now()
        with self._session() as s, s.begin():
            row = s.get(m.ServiceInstance, role)
            if row is None:
                s.add(m.ServiceInstance(role=role, holder=holder, started_at=now, heartbeat_at=now))
            else:
                row.holder, row.started_at, row.heartbeat_at = holder, now, now
                row.last_tick_at, row.stopped_at = None, None

    def service_ticked(self, role: str) -> None:
        now = clock.now()
        with self._session() as s, s.begin():
            s.execute(update(m.ServiceInstance).where(m.ServiceInstance.role == role)
                      .values(heartbeat_at=now, last_tick_at=now))

    def service_stopped(self, role: str) -> None:
        with self._session() as s, s.begin():
            s.execute(update(m.ServiceInstance).where(m.ServiceInstance.role == role).values(stopped_at=clock.now()))

    def service_info(self, role: str) -> ServiceInfo | None:
        with self._reading() as s:
            row = s.get(m.ServiceInstance, role)
            if row is None:
                return None
            return ServiceInfo(row.role, row.holder, row.started_at, row.heartbeat_at, row.last_tick_at, row.stopped_at)

    # -- daily digests ----------------------------------------------------------------------------
    def stories_published_between(self, start: datetime, end: datetime, base_url: str, *,
                                  content: bool = True) -> list[StoryEntry]:
        """Live stories published in ``[start, end)`` (aware datetimes; a local day's bounds), as entries.

        ``content=False``: entries without their HTML body (``content_html`` is ""), for the digests, which
        show titles, summaries and channels only: a day of thousands of stories loads much less."""
        with self._reading() as s:
            return self._between(s, start, end, base_url, content=content)

    def entries_of_days(self, bounds: Sequence[tuple[datetime, datetime]], base_url: str) -> list[list[StoryEntry]]:
        """``day_entries`` of several days (each ``[start, end)``, in order, not overlapping) with one query
        over their whole span: a full render loads every day's digest, and a query per day cost more than
        its rows. Entries of the span outside every given day are dropped."""
        if not bounds:
            return []
        with self._reading() as s:
            entries = self._between(s, bounds[0][0], bounds[-1][1], base_url, content=False)
        starts = [start for start, _ in bounds]
        days: list[list[StoryEntry]] = [[] for _ in bounds]
        for e in entries:  # newest first: each day's list keeps the order of its own query
            i = bisect_right(starts, e.published) - 1
            if i >= 0 and e.published < bounds[i][1]:
                days[i].append(e)
        return days

    def _between(self, s: Session, start: datetime, end: datetime, base_url: str, *,
                 content: bool) -> list[StoryEntry]:
        in_range = (_LIVE, m.Story.published >= start, m.Story.published < end)
        stories = s.execute(select(*_STORY).where(*in_range).order_by(m.Story.published.desc(), m.Story.id)).all()
        return self._entries(s, stories, base_url, content=content, ids_of=select(m.Story.id).where(*in_range))

    def day_entries(self, start: datetime, end: datetime, base_url: str, *,
                    stamps: Iterable[tuple[str, datetime]] | None = None) -> list[StoryEntry]:
        """``stories_published_between(start, end, base_url, content=False)``: a digest day's entries.

        With ``remember_busy_days``, a busy day's entries are kept with their story's ``changed_at``, and the
        next call reads the day's (story, stamp) rows and loads only the stories whose stamp moved. Every
        write that changes what an entry shows (its members, their titles, links, channels, tags, dates)
        moves the stamp: the digests' day fingerprints rely on the same rule. ``stamps``: the day's (story,
        stamp) pairs when the caller has just read them (in the same writer's turn), instead of reading them
        again."""
        if self._days is None:
            return self.stories_published_between(start, end, base_url, content=False)
        key = (start, end, base_url)
        with self._session() as s:  # one transaction: the stamps read here and the entries are one snapshot
            # (id, stamp) as plain tuples: on a busy day this is the one query that reads every story's row
            pairs = stamps if stamps is not None else s.connection().execute(
                select(m.Story.id, m.Story.changed_at)
                .where(_LIVE, m.Story.published >= start, m.Story.published < end))
            stamp_of = {sid: changed for sid, changed in pairs}
            with self._days_lock:
                kept = self._days.pop(key, {})
            stale = [sid for sid, changed in stamp_of.items() if (k := kept.get(sid)) is None or k[0] != changed]
            if len(stale) > len(stamp_of) // 4:  # mostly new: the whole day in one query, as without the cache
                entries = self._between(s, start, end, base_url, content=False)
                kept = {e.story_id: (stamp_of[e.story_id], e) for e in entries if e.story_id in stamp_of}
            else:
                # updated in place: rebuilding thousands of (stamp, entry) pairs after every change costs more
                # than the change (allocations, and the garbage collector walking them)
                rows = s.execute(select(*_STORY).where(m.Story.id.in_(stale))).all() if stale else []
                for sid in stale:
                    kept.pop(sid, None)
                # a story without a live member has no entry (as in ``_entries``)
                for e in self._entries(s, rows, base_url, content=False):
                    kept[e.story_id] = (stamp_of[e.story_id], e)
                for sid in [sid for sid in kept if sid not in stamp_of]:  # withdrawn, or moved to another day
                    del kept[sid]
                entries = [e for _, e in kept.values()]
                # the order of ``stories_published_between``: published (newest first), then story id
                entries.sort(key=lambda e: e.story_id)
                entries.sort(key=lambda e: e.published, reverse=True)
        if len(stamp_of) >= BUSY_DAY:
            with self._days_lock:
                self._days[key] = kept
                while len(self._days) > BUSY_DAYS_KEPT:
                    self._days.popitem(last=False)
        return entries

    def story_stamps(self) -> list[tuple[str, datetime, datetime]]:
        """(story id, published, changed_at) of every live story: enough to tell which days changed.

        Every sync that changed something reads all of these (100,000 rows at that size): a Core query on a
        plain connection, rows as tuples.
        """
        with self._reader.connect() as conn:
            rows = conn.execute(
                select(m.Story.id, m.Story.published, m.Story.changed_at).where(m.Story.withdrawn.is_(False))
            )
            stamps = [(sid, pub, changed) for sid, pub, changed in rows]
            conn.rollback()
            return stamps

    def stories_published(self, story_ids: Iterable[str]) -> list[datetime]:
        """The ``published`` of these stories, withdrawn ones too: the days a sync's changes fall on."""
        ids = sorted(set(story_ids))
        out: list[datetime] = []
        with self._reader.connect() as conn:
            for chunk in _chunks(ids, 500):
                out.extend(conn.scalars(select(m.Story.published).where(m.Story.id.in_(list(chunk)))))
            conn.rollback()
        return out

    def stamps_between(self, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        """(story id, changed_at) of the live stories published in ``[start, end)``: one day's fingerprint,
        read through the ``published`` index instead of every story's stamps."""
        with self._reader.connect() as conn:
            rows = conn.execute(
                select(m.Story.id, m.Story.changed_at)
                .where(_LIVE, m.Story.published >= start, m.Story.published < end)
            )
            stamps = [(sid, changed) for sid, changed in rows]
            conn.rollback()
            return stamps

    def digest_records(self) -> dict[str, DigestState]:
        """Every recorded digest day (``YYYY-MM-DD``) with its fingerprint, date and e-mail state."""
        with self._reading() as s:
            return {r.day: _digest_state(r) for r in s.scalars(select(m.DigestRecord))}

    def save_digest(self, day: str, fingerprint: str, stories: int, newest: datetime) -> DigestState:
        """Record a day's fingerprint. A new day's ``updated`` is its newest story's date; it moves (to now)
        only when the fingerprint — the day's stories — changes, and stays put otherwise."""
        return self.save_digests([(day, fingerprint, stories, newest)])[day]

    def save_digests(self, days: Sequence[tuple[str, str, int, datetime]]) -> dict[str, DigestState]:
        """``save_digest`` for several (day, fingerprint, stories, newest) in one transaction (a full render
        records every day: one commit each cost more than the rest of recording them)."""
        states = {}
        with self._session() as s, s.begin():
            # renders of several processes may record the same new day at once (PostgreSQL): insert it unless
            # it is there, then change it under a row lock
            ins = _dialect_insert(s)(m.DigestRecord)
            for day, fingerprint, stories, newest in days:
                s.execute(ins.values(day=day, fingerprint=fingerprint, stories=stories, updated=newest)
                          .on_conflict_do_nothing(index_elements=["day"]))
                row = s.get(m.DigestRecord, day, with_for_update=True, populate_existing=True)
                if row is None:  # deleted by another process in between
                    row = m.DigestRecord(day=day, fingerprint=fingerprint, stories=stories, updated=newest)
                    s.add(row)
                elif row.fingerprint != fingerprint:
                    row.fingerprint, row.stories = fingerprint, stories
                    row.updated = max(clock.now(), newest, row.updated)
                s.flush()
                states[day] = _digest_state(row)
        return states

    def invalidate_digests(self, days: Iterable[str]) -> None:
        """Mark recorded days as changed (empty fingerprint; counts, dates and e-mail state kept): their stories
        changed while digests were off, and the next refresh must look at them again."""
        days = sorted(set(days))
        if not days:
            return
        with self._session() as s, s.begin():
            for chunk in _chunks(days, 500):
                s.execute(update(m.DigestRecord).where(m.DigestRecord.day.in_(list(chunk))).values(fingerprint=""))

    def delete_digests(self, days: Iterable[str]) -> None:
        """Forget days that no longer have stories (their e-mail state goes with them only if never sent)."""
        days = list(days)
        if not days:
            return
        with self._session() as s, s.begin():
            s.execute(delete(m.DigestRecord).where(m.DigestRecord.day.in_(days), m.DigestRecord.email_status.is_(None)))
            s.execute(
                update(m.DigestRecord).where(m.DigestRecord.day.in_(days)).values(stories=0, fingerprint="")
            )

    def claim_digest_email(self, day: str, *, stale_before: datetime) -> bool:
        """Take the right to send ``day``'s e-mail (atomic across processes); False when it was sent or is
        being sent. A claim older than ``stale_before`` (a crash mid-send) may be taken again."""
        now = clock.now()
        with self._session() as s, s.begin():
            res = s.execute(
                update(m.DigestRecord)
                .where(
                    m.DigestRecord.day == day,
                    (m.DigestRecord.email_status.is_(None))
                    | ((m.DigestRecord.email_status == "sending") & (m.DigestRecord.email_claimed_at < stale_before)),
                )
                .values(email_status="sending", email_claimed_at=now)
            )
            return bool(getattr(res, "rowcount", 0) == 1)

    def finish_digest_email(self, day: str, *, sent: bool, recipients: str = "", message_id: str = "") -> None:
        """Mark ``day``'s e-mail sent, or release the claim after a failure so a later run retries."""
        with self._session() as s, s.begin():
            values: dict[str, object] = (
                {"email_status": "sent", "email_sent_at": clock.now(), "email_recipients": recipients,
                 "email_message_id": message_id}
                if sent
                else {"email_status": None, "email_claimed_at": None}
            )
            s.execute(update(m.DigestRecord).where(m.DigestRecord.day == day).values(**values))



@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """Who last ran a service role on this database (the lock says whether it still runs)."""

    role: str
    holder: str
    started_at: datetime
    heartbeat_at: datetime
    last_tick_at: datetime | None
    stopped_at: datetime | None


@dataclass(frozen=True, slots=True)
class DigestState:
    day: str
    fingerprint: str
    stories: int
    updated: datetime
    email_status: str | None
    email_sent_at: datetime | None


def _digest_state(r: m.DigestRecord) -> DigestState:
    return DigestState(r.day, r.fingerprint, r.stories, r.updated, r.email_status, r.email_sent_at)


def _shown(a: m.Article | ArticleValue) -> tuple[object, ...]:
    """The fields of an article a reader sees besides its text and date."""
    return (a.title, a.content_html, a.summary, a.channel, a.original_title, a.author, a.submitter, a.publisher,
            a.link)


@dataclass(frozen=True, slots=True)
class _Member:
    """What ``_refresh_stories`` needs of a story's live member."""

    id: str
    published: datetime
    updated: datetime | None
    text_length: int


class _Bands(Protocol):
    """Band key → (article id, band number) pairs: a dict of one batch's, or a bulk sync's ``BandMap``."""

    def get(self, key: int, default: Sequence[tuple[str, int]], /) -> Sequence[tuple[str, int]]: ...


@dataclass(slots=True)
class _BulkIndex:
    """A bulk sync's in-memory band index and the changes of the open transaction (applied once committed)."""

    bands: BandMap
    last_rowid: int = 0  # article_bands' highest rowid when this sync last committed: another writer moves it
    pending: list[tuple[str, Sequence[int]]] = field(default_factory=list)  # (article id, its bands; () = gone)

    def commit(self) -> None:
        for article_id, bands in self.pending:
            if bands:
                self.bands.add(article_id, bands)
            else:
                self.bands.discard(article_id)
        self.pending.clear()


class _BatchCandidates:
    """The candidates ``Repository._candidates`` would return for each new article of a batch, as if the
    batch's articles were stored one by one: database rows fetched up front, earlier batch articles in memory.
    """

    CHUNK = 500  # values per IN (…): well below every database's parameter limit

    def __init__(
        self, repo: Repository, s: Session,
        prepared: Sequence[tuple[ArticleValue, str | None, dedup.Fingerprint | None]],
    ) -> None:
        self.t = repo.thresholds
        self.by_hash: dict[str, list[dedup.Candidate]] = {}
        self.by_url: dict[str, list[dedup.Candidate]] = {}
        self.bands: dict[int, list[tuple[str, int]]] = {}  # band key → (article id, band no)
        self.stored: dict[str, dedup.Candidate] = {}  # database band candidates, with their text
        cols = (m.Article.id, m.Article.story_id, m.Article.content_hash, m.Article.canonical_url,
                m.Article.title, m.Source.name)
        live = select(*cols).join(m.Source, m.Source.id == m.Article.source_id).where(m.Article.withdrawn_at.is_(None))
        hashes = sorted({a.content_hash for a, _, _ in prepared})
        urls = sorted({u for _, u, _ in prepared if u})
        seen: set[str] = set()
        for column, values in ((m.Article.content_hash, hashes), (m.Article.canonical_url, urls)):
            for chunk in _chunks(values, self.CHUNK):
                for aid, sid, h, cu, title, src in s.execute(live.where(column.in_(chunk))):
                    if aid in seen:
                        continue
                    seen.add(aid)
                    self._remember(dedup.Candidate(aid, sid, h, cu, title=title, source=src))
        # in a bulk sync the map holds every indexed article (Repository.bulk_index); else ask the index
        self.db_bands: _Bands = repo._bulk.bands if repo._bulk is not None else self._look_up(s, prepared)
        # the texts of the database articles that can be among an article's top candidates
        wanted: set[str] = set()
        self.db_ranked: dict[str, list[tuple[str, int]]] = {}  # article id → its ranked stored candidates
        for a, _, fp in prepared:
            if self._banded(fp):
                assert fp is not None
                ranked = self.db_ranked[a.id] = self._ranked(self._count(fp, self.db_bands, a.id))
                wanted.update(aid for aid, _ in ranked[: self.t.max_candidates])
        for chunk in _chunks(sorted(wanted), self.CHUNK):
            for aid, sid, h, cu, text_, title, src in s.execute(
                select(m.Article.id, m.Article.story_id, m.Article.content_hash, m.Article.canonical_url,
                       m.Article.content_text, m.Article.title, m.Source.name)
                .join(m.Source, m.Source.id == m.Article.source_id)
                .where(m.Article.id.in_(chunk), m.Article.withdrawn_at.is_(None))
            ):
                self.stored[aid] = dedup.Candidate(aid, sid, h, cu, text_, 0, title, src)

    def _look_up(
        self, s: Session, prepared: Sequence[tuple[ArticleValue, str | None, dedup.Fingerprint | None]],
    ) -> dict[int, list[tuple[str, int]]]:
        """The index rows under the batch's band keys: band key → (article id, band number)."""
        keys = sorted({k for _, _, fp in prepared if self._banded(fp) for k in fp.bands})  # type: ignore[union-attr]
        db_bands: dict[int, list[tuple[str, int]]] = {}
        for key_chunk in _chunks(keys, 5000):
            # band keys are our own integers, written into the statement: binding 20,000 parameters per batch
            # costs SQLAlchemy more than the look-up itself
            # (as plain SQL for the driver: a text() construct would keep every such statement in the
            # engine's compiled-statement cache)
            listed = ",".join(str(int(k)) for k in key_chunk)
            for key, aid, band_no in s.connection().exec_driver_sql(
                f"SELECT band_key, article_id, band_no FROM article_bands WHERE band_key IN ({listed})"
            ):
                db_bands.setdefault(key, []).append((aid, band_no))
        return db_bands

    def _banded(self, fp: dedup.Fingerprint | None) -> bool:
        return fp is not None and bool(fp.bands) and fp.size >= self.t.min_shingles

    def _remember(self, c: dedup.Candidate) -> None:
        """Index ``c`` for exact matches: without its text, as the exact query of ``_candidates`` returns it."""
        c = replace(c, content_text="", band_matches=0)
        self.by_hash.setdefault(c.content_hash, []).append(c)
        if c.canonical_url:
            self.by_url.setdefault(c.canonical_url, []).append(c)

    @staticmethod
    def _count(fp: dedup.Fingerprint, index: _Bands, own: str) -> dict[str, tuple[int, int]]:
        """article id → (band rows shared, highest band number shared), as the SQL ``GROUP BY`` counts."""
        out: dict[str, tuple[int, int]] = {}
        for key in set(fp.bands):
            for aid, band_no in index.get(key, ()):
                if aid != own:
                    n, top = out.get(aid, (0, -1))
                    out[aid] = (n + 1, max(top, band_no))
        return out

    @staticmethod
    def _ranked(counts: dict[str, tuple[int, int]]) -> list[tuple[str, int]]:
        """(id, shared bands) passing the ``HAVING`` of ``_candidates``, the most shared first, then by id."""
        kept = [(aid, n) for aid, (n, top) in counts.items()
                if n >= dedup.MIN_BAND_MATCHES or top == dedup.TITLE_BAND]
        return sorted(kept, key=lambda x: (-x[1], x[0]))

    def candidates(self, a: ArticleValue, curl: str | None, fp: dedup.Fingerprint | None) -> list[dedup.Candidate]:
        exact = {c.article_id: c for c in self.by_hash.get(a.content_hash, ())}
        if curl:
            exact.update((c.article_id, c) for c in self.by_url.get(curl, ()))
        if exact:
            return [exact[k] for k in sorted(exact)][:20]
        if not self._banded(fp):
            return []
        assert fp is not None
        ranked = sorted(
            self.db_ranked[a.id] + self._ranked(self._count(fp, self.bands, a.id)),
            key=lambda x: (-x[1], x[0]),
        )[: self.t.max_candidates]
        out = []
        for aid, n in ranked:
            c = self.stored.get(aid)
            if c is not None:
                out.append(replace(c, band_matches=n))
        return out

    def add(self, a: ArticleValue, curl: str | None, fp: dedup.Fingerprint | None, story_id: str) -> None:
        """``a`` is stored now (in story ``story_id``): the next articles of the batch may match it."""
        c = dedup.Candidate(a.id, story_id, a.content_hash, curl, a.content_text, 0, a.title, a.source)
        self._remember(c)
        self.stored[a.id] = c
        if fp is not None:
            for i, key in enumerate(fp.bands):
                self.bands.setdefault(key, []).append((a.id, i))


def _dialect_insert(s: Session) -> Any:
    """The database's own INSERT construct (it has ``on_conflict_do_nothing``), imported when first used: the
    PostgreSQL dialect's import cost every SQLite command 25 ms at start-up."""
    return importlib.import_module(f"sqlalchemy.dialects.{s.get_bind().dialect.name}").insert


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _table(model: type[m.Base]) -> Table:
    """A model's table, for Core statements that skip the ORM's per-row work."""
    return cast(Table, model.__table__)


def _insert_plain(s: Session, model: type[m.Base], columns: Sequence[str], rows: Sequence[tuple[object, ...]]) -> None:
    """Insert many rows of plain values (no type conversion): the DB-API's executemany on SQLite, a third
    faster than a Core insert for the ~40 index rows of every article; Core's batched insert elsewhere."""
    if not rows:
        return
    if s.get_bind().dialect.name == "sqlite":
        sql = f"INSERT INTO {_table(model).name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        s.connection().exec_driver_sql(sql, list(rows))
        return
    for start in range(0, len(rows), 5000):
        s.connection().execute(insert(_table(model)), [dict(zip(columns, r, strict=True)) for r in rows[start : start + 5000]])

"""Orchestration: sources → fetch → normalize → dedup → store, then re-render what changed.

No transaction is open while files or the network are read: a batch is read and normalized first, then
stored in one transaction together with the source's fetch state.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from . import clock, limits, recovery
from .config import Settings, SourceSettings
from .errors import Interrupted, SourceError, SyndicatorError
from .rendered import published_files
from .sources import archive
from .storage.repo import BatchResult, ItemChange, Repository
from .types import SourceReport, SyncReport

if TYPE_CHECKING:
    from .parallel import Result

log = logging.getLogger(__name__)
BATCH = 500
# the first batch of a sync is stored sooner: the main process stores it while the workers normalize the
# next files, instead of waiting idle until they have made a whole batch
FIRST_BATCH = 100
# a first sync's near-duplicate index is built beside the render (by its forked copy) up to this many articles;
# a larger one is built before it, as the map it is written from would stay in the copy while both processes
# render: 68 MB at 100,000 posts took the tree from under 400 MB to 456 MB at its peak
BESIDE_RENDER_MAX = 30_000


class Progress(Protocol):
    """A source's progress: files done so far, and how many there are when a sync knows (it reads every one)."""

    def __call__(self, source: str, done: int, total: int | None = None, /) -> None: ...


class Rendering(Protocol):
    """The render's progress: called with no stage when it starts, then now and then with what it is at
    (``tags 300/1,385``, ``story pages 4,500/9,000``), from this process only."""

    def __call__(self, stage: str = "", /) -> None: ...


StopAsked = Callable[[], bool]  # True once the service is asked to stop (SIGTERM/SIGINT)


@dataclass(slots=True)
class Changes:
    """What a sync changed, so only the affected outputs are re-rendered."""

    stories: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    moved_from: set[datetime] = field(default_factory=set)  # a moved story's old `published` (its old digest day)

    def add(self, r: BatchResult) -> None:
        self.stories |= r.changed_stories
        self.tags |= r.changed_tags
        self.moved_from |= r.moved_from

    def merge(self, other: Changes) -> None:
        """Add another sync's changes (the service publishes once after polling several sources)."""
        self.stories |= other.stories
        self.tags |= other.tags
        self.moved_from |= other.moved_from

    def __bool__(self) -> bool:
        return bool(self.stories or self.tags)


def _count(report: SourceReport, r: BatchResult) -> None:
    report.new += r.new
    report.updated += r.updated
    report.unchanged += r.unchanged
    report.duplicates += r.duplicates
    report.withdrawn += r.withdrawn


def _normalized(
    settings: Settings, files: Iterator[archive.FileRead], stop: StopAsked | None,
) -> Iterator[tuple[archive.FileRead, Result]]:
    """The changed files, normalized (``parallel.normalize_all``). A sync where no file changed never imports
    the normalizer (the walk finds nothing before the first file would be handed over)."""
    first = next(files, None)
    if first is None:
        return iter(())
    from .parallel import normalize_all  # imports normalize/: only when some file changed

    return normalize_all(((fr, fr.item) for fr in itertools.chain([first], files)), settings.normalize,
                         settings.tags, stop=stop, fingerprints=settings.dedup.enabled)


def _stopped(source: str, done: int, unsaved: int) -> str:
    return f"[{source}] stopped after {done} files" + (f"; the unsaved batch of {unsaved} was dropped" if unsaved else "")


def sync_archive(
    settings: Settings, repo: Repository, src: SourceSettings, *, full: bool, changes: Changes,
    progress: Progress | None = None, stop: StopAsked | None = None, only: Collection[str] | None = None,
) -> SourceReport:
    """Sync one archive folder; one bad file never stops the others.

    ``only``: the relative paths a watcher saw change (``archive.post_path``); just those files are looked at
    and just their stored states read, with the same outcome for them as a full scan.
    When ``stop()`` turns true, the batch not yet stored is dropped and Interrupted is raised: the batches
    already stored were committed with their file states, so the next sync picks up exactly the rest.
    """
    report = SourceReport(src.name)
    assert src.path is not None
    known = repo.file_states(src.name, None if only is None else {archive.key_for(rel) for rel in only})
    path = src.path
    posts = functools.cache(lambda: archive.count_posts(path))  # a walk of the folder, made at most once
    repo.expect_articles(lambda: posts() - len(known))
    # a first or full sync reads every file, so a progress bar can show how many are left (the count is the
    # walk a first sync makes for ``expect_articles`` anyway); otherwise what changed is unknown until scanned
    total = posts() if progress is not None and only is None and (full or not known) else None
    scan, files = archive.scan(src.name, src.path, src.timezone, known, full=full,
                               max_bytes=settings.limits.max_file_bytes, only=only)
    batch: list[ItemChange] = []
    done = 0

    def flush() -> None:
        if batch:
            r = repo.save_batch(src.name, batch)
            _count(report, r)
            changes.add(r)
            batch.clear()

    for fr, (article, error, fp) in _normalized(settings, files, stop):
        if stop is not None and stop():
            raise Interrupted(_stopped(src.name, done, len(batch)))
        done += 1
        if article is not None:
            bounded, notes = limits.bound(article, settings.limits, now=clock.now(), fallback=fr.item.mtime)
            for note in notes:
                log.warning("%s: %s", f"{src.name}/{fr.item.key}", note)
            if (bounded.content_text, bounded.title) != (article.content_text, article.title):
                fp = None  # cut to the limits: storage fingerprints what is stored
            batch.append(ItemChange(fr.item.key, fr.state, bounded, fingerprint=fp))
        else:
            log.warning("%s: skipped: %s", f"{src.name}/{fr.item.key}", error)
            report.skipped += 1
            report.errors.append(f"{fr.item.key}: {error}")
            batch.append(ItemChange(fr.item.key, fr.state, None, error=error))
        first = len(batch) == done  # no batch stored yet (every file goes into the batch)
        if len(batch) >= (min(BATCH, FIRST_BATCH) if first else BATCH):
            flush()
        if progress is not None and done % 50 == 0:
            progress(src.name, done, total)
    if stop is not None and stop():  # normalize_all ends early when asked to stop while waiting for a worker
        raise Interrupted(_stopped(src.name, done, len(batch)))
    for key, reason in scan.errors:
        log.warning("%s: skipped: %s", f"{src.name}/{key}", reason)
        report.skipped += 1
        report.errors.append(f"{key}: {reason}")
    batch.extend(ItemChange(key, state) for key, state in scan.state_only)
    r = repo.save_batch(src.name, batch, deleted=scan.deleted)
    _count(report, r)
    changes.add(r)
    report.unchanged += scan.unchanged + len(scan.state_only)
    if progress is not None:
        progress(src.name, done, total)
    return report


def sync_remote(
    settings: Settings, repo: Repository, src: SourceSettings, *, full: bool, changes: Changes,
    progress: Progress | None = None, stop: StopAsked | None = None, only: Collection[str] | None = None,
) -> SourceReport:
    """Poll one feed or html source (see poll.py); its failure is in the report, not raised.

    ``stop`` is only checked before the poll: one feed document is saved in one transaction. ``only`` (paths
    a watcher saw change) has no meaning for a remote source: it is always polled whole.
    """
    if stop is not None and stop():
        raise Interrupted(f"{src.name}: stop asked before polling")
    from . import poll  # imports requests, feedparser and bs4: only when a remote source is synced

    report, r = poll.sync_remote(settings, repo, src, full=full)
    if r is not None:
        changes.add(r)
    if progress is not None:
        progress(src.name, report.new + report.updated + report.unchanged + report.duplicates)
    return report


class SourceSync(Protocol):
    def __call__(
        self, settings: Settings, repo: Repository, src: SourceSettings, *, full: bool, changes: Changes,
        progress: Progress | None = None, stop: StopAsked | None = None, only: Collection[str] | None = None,
    ) -> SourceReport: ...


# The source types `sync` (and the scheduler, through it) can poll, keyed by `type` in config.
SOURCE_TYPES: dict[str, SourceSync] = {"archive": sync_archive, "feed": sync_remote, "html": sync_remote}


def sync(
    settings: Settings, repo: Repository, *, names: Sequence[str] = (), full: bool = False,
    progress: Progress | None = None, render: bool = True, stop: StopAsked | None = None,
    only: Mapping[str, Collection[str]] | None = None, rendering: Rendering | None = None,
) -> tuple[SyncReport, Changes]:
    """Sync the named sources (all enabled ones when none are named) and re-render what changed.

    ``stop`` (the service's stop flag, a one-off sync's first Ctrl-C) is checked between files (see
    sync_archive) and before the render; a render that has begun finishes. ``rendering`` is called when the
    render starts, and with its stages while it runs (a progress bar says so).
    ``only``: archive source name → the relative paths to look at instead of the whole folder (the service's
    watcher); a source not in it is scanned in full.
    """
    started = time.monotonic()
    pending = recovery.begin(settings.output.dir) if render else None  # before any commit
    report = SyncReport()
    changes = Changes()
    chosen = [settings.source(n) for n in names] if names else [s for s in settings.sources if s.enabled]
    finish: Callable[[], None] | None = None
    with repo.bulk_index():  # a first sync builds the near-duplicate index once, at its end
        for src in chosen:
            _sync_source(settings, repo, src, report, changes, full=full, progress=progress, stop=stop,
                         only=None if only is None else only.get(src.name))
        if render:
            # the render's forked copy builds the index before its story pages (the render never reads it),
            # where this process would have spent seconds of one core on it first
            finish = repo.leave_bulk(BESIDE_RENDER_MAX)
    try:
        if render:
            if stop is not None and stop():  # every batch is stored; the outputs wait for the next sync
                raise Interrupted("stopped before the render; the next sync renders the outputs")
            everything = full or (pending is not None and pending.recovering)
            if everything or changes or not all((settings.output.dir / f).exists()
                                                for f in published_files(settings)):
                from .publish import publish  # imported only when there is something to write

                if rendering is not None:
                    rendering()
                alongside, finish = finish, None  # publish runs it (in its copy, or here)
                report.feeds_written = publish(settings, repo, changes=None if everything else changes,
                                               alongside=alongside, progress=rendering)
            if pending is not None:
                pending.finish()
    finally:
        if finish is not None:  # nothing to render, or a failure before the render
            finish()
    report.seconds = time.monotonic() - started
    return report, changes


def _sync_source(
    settings: Settings, repo: Repository, src: SourceSettings, report: SyncReport, changes: Changes, *, full: bool,
    progress: Progress | None, stop: StopAsked | None, only: Collection[str] | None,
) -> None:
    """Sync one source into ``report`` and ``changes``; its failure is logged and reported, not raised."""
    repo.ensure_source(src.name, src.type, str(src.path or src.url))
    try:
        syncer = SOURCE_TYPES.get(src.type)
        if syncer is None:
            raise SourceError(f"source type {src.type!r} is not supported", source=src.name)
        sr = syncer(settings, repo, src, full=full, changes=changes, progress=progress, stop=stop,
                    only=only)
        if sr.disabled is None:  # a disabled source was not polled: nothing to record
            repo.record_attempt(src.name, error=sr.fetch_error, next_due=sr.next_due)
    except Interrupted:
        raise
    except SyndicatorError as exc:
        log.error("%s", exc)
        sr = SourceReport(src.name, errors=[str(exc)])
        repo.record_attempt(src.name, error=str(exc))
    report.sources.append(sr)
    quiet = not (sr.new or sr.updated or sr.duplicates or sr.skipped or sr.withdrawn or sr.errors)
    log.log(
        logging.DEBUG if quiet else logging.INFO,  # the service polls every few seconds: say only news
        "%s: new=%d updated=%d duplicates=%d unchanged=%d skipped=%d withdrawn=%d",
        src.name, sr.new, sr.updated, sr.duplicates, sr.unchanged, sr.skipped, sr.withdrawn,
    )

"""A worker of a scale-out deployment: claims due work from the database, does it, hands it back.

Any number of workers on any hosts share one PostgreSQL database. Nothing is assigned: each ``tick`` a
worker claims (``storage.leases``) a few due source polls, then due output renders, then the day's digest,
so the work spreads over however many workers there are, and a dead worker's claims pass to the others
when their leases run out.

- **Polls**: one lease row per configured source; its ``due_at`` is the source's current slot. The worker
  that claims it syncs the source (``sync.sync``, one source, no render) and completes the lease with the
  next slot (``due_at + every``; when the poll overran slots, the latest of them, at once — see
  ``next_slot``). A redo after a takeover is harmless:
  articles are keyed by (source, key) and an unchanged item is recognised as such.
- **Renders**: every stored batch requests, *in its own transaction*, the render keys it touched
  (``publish.render_keys``), so a crash after a commit cannot lose a re-render. One worker claims a key and
  renders that output; requests that arrive meanwhile keep the key due, so the last change is always
  rendered and each output is rendered once per change, not once per worker.
- **Digest**: one lease row per local day, due at the digest time, claimed once and never again.

A background thread renews every lease the worker holds (each third of the lease length) while the work
runs; a ``SIGKILL``-ed worker stops renewing, which is how the others learn it is gone.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time as time_mod
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from .config import Settings
from .errors import ConfigError, Interrupted, LockHeld, SyndicatorError
from .logs import source_context
from .publish import SITE, attach_output_store, publish_keys, render_keys
from .storage import locks
from .storage.leases import DIGEST, POLL, RENDER, Lease, Leases
from .storage.repo import BatchResult, Repository
from .types import SourceReport, SyncReport

if TYPE_CHECKING:
    from .metrics import WorkerMetrics
    from .sync import Progress

log = logging.getLogger(__name__)

DigestJob = Callable[[date], object]  # builds (and sends) the digest of a local day
DIGEST_CHECK_SECONDS = 5.0  # how often a worker asks whether the day's digest is due (it is rare work)
WAKE_SLACK = 0.005  # seconds after a slot that an idle worker wakes (due means due_at <= the database's now)
MIN_WAIT = 0.01  # shortest sleep of the poll loop (another worker is committing a claim of the due rows)


def default_holder() -> str:
    """``host:pid``: who holds a lease, as operators read it in logs and status."""
    return f"{socket.gethostname()}:{os.getpid()}"


def next_slot(due_at: datetime, every: float, now: datetime) -> datetime:
    """The slot after ``due_at`` on the grid ``due_at + k·every``, as seen at ``now`` (the poll's end).

    Normally ``due_at + every``, still ahead. When the poll ran past one or more slots (a big batch, a slow
    server, a busy machine), those slots are coalesced, as APScheduler coalesces missed runs: the latest one
    that has passed is returned — due at once, so it is still polled, late — and only the older ones are
    skipped (the caller logs them).
    """
    step = timedelta(seconds=every)
    nxt = due_at + step
    if nxt <= now:
        passed = int((now - due_at) / step)  # slots in (due_at, now]
        nxt = due_at + step * passed
    return nxt


@dataclass(slots=True)
class TickReport:
    polls: int = 0
    renders: int = 0
    digests: int = 0
    takeovers: int = 0
    lost: int = 0
    files: int = 0  # output files whose bytes changed
    errors: list[str] = field(default_factory=list)

    @property
    def worked(self) -> bool:
        return bool(self.polls or self.renders or self.digests)


class Worker:
    """Claims and does due work; ``tick`` once, or ``run`` until a stop event is set."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        *,
        holder: str | None = None,
        digest: DigestJob | None = None,
        digest_at: time | None = None,
    ) -> None:
        if repo.engine.dialect.name != "postgresql":
            raise ConfigError(
                "scale-out roles need PostgreSQL; SQLite is owned by one `syndicator run`", key="database.url"
            )
        self.settings = settings
        self.repo = repo
        cluster = settings.cluster
        self.leases = Leases(repo.engine, holder or default_holder(), ttl=cluster.seconds("lease"))
        self.tick_seconds = settings.schedule.seconds("tick")
        self.poll_threads = cluster.poll_threads
        self.metrics: WorkerMetrics | None = None  # set by roles.run_worker when /metrics is served
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._poll_done = threading.Event()  # a poll thread became free: claim again at once
        self._rng = random.Random()
        if digest is None and settings.digest.enabled:
            from .digest import run_daily_digest  # the service's daily job: digest.day, e-mailed once

            digest = lambda _day: run_daily_digest(settings, repo)  # noqa: E731
            digest_at = digest_at or time(*settings.digest.hour_minute)
        self.digest = digest
        self.digest_at = digest_at or time(7, 0)
        self._held: dict[tuple[str, str], Lease] = {}
        self._held_lock = threading.Lock()
        self._digest_day: date | None = None
        self._digest_next_check = 0.0
        self._stop = threading.Event()
        attach_output_store(settings, repo)
        # render requests commit with the batch that makes them necessary: a crash in between loses nothing
        self._hook = self.leases.requester(RENDER, self._render_keys)
        repo.batch_hooks.append(self._hook)

    @property
    def holder(self) -> str:
        return self.leases.holder

    @property
    def in_flight(self) -> int:
        """Polls running on the poll threads now."""
        return self._in_flight

    # -- setup ----------------------------------------------------------------------------------
    def register(self) -> None:
        """Make the poll rows of the configured sources (new ones due now) and drop those of removed ones."""
        names = []
        now = self.leases.now()
        for src in self.settings.sources:
            if src.enabled:
                self.repo.ensure_source(src.name, src.type, str(src.path or src.url))
                names.append(src.name)
                # first polls spread over one interval (at most a minute), not all at the same instant
                spread = (zlib.crc32(src.name.encode()) % 1000) / 1000 * min(src.interval_seconds, 60.0)
                self.leases.ensure(POLL, [src.name], now + timedelta(seconds=spread))
        self.leases.forget(POLL, names)

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Work until ``stop`` is set: polls on a small thread pool, renders and the digest in another thread.

        Polls: this thread claims due sources (as many as there are free poll threads, at most
        ``cluster.poll_batch`` per claim) and hands each to a poll thread, so a slow feed never holds up
        the others; when nothing is due it sleeps until the next slot of any source (at most one tick),
        so a poll starts at its slot rather than up to a tick later. Renders run in their own loop so that
        a long render (the front page reads every tag) never delays a due poll; each loop takes its own
        claims, so they need no coordination beyond the leases. One more thread renews held leases.
        """
        if stop is not None:
            self._stop = stop
        stop = self._stop
        if any(s.type != "archive" for s in self.settings.sources):
            from . import poll  # noqa: F401  (requests, feedparser, bs4: imported once, not by the first poll)
        self.register()
        threads = [
            threading.Thread(target=self._renew_loop, args=(stop,), name="lease-renewer", daemon=True),
            threading.Thread(target=self._loop, args=(stop, self.tick_renders), name="renderer", daemon=True),
        ]
        for t in threads:
            t.start()
        log.info("worker %s: polling %d sources, %d at once, lease %s", self.holder, len(self.settings.sources),
                 self.poll_threads, self.settings.cluster.lease)
        pool = ThreadPoolExecutor(max_workers=self.poll_threads, thread_name_prefix="poll")
        try:
            self._poll_loop(stop, pool)
        finally:
            stop.set()
            pool.shutdown(wait=True)  # each poll in flight finishes or gives its lease back
            for t in threads:
                t.join(timeout=30)
            self._release_all()

    def _poll_loop(self, stop: threading.Event, pool: ThreadPoolExecutor) -> None:
        batch = self.settings.cluster.poll_batch
        while not stop.is_set():
            self._poll_done.clear()
            with self._in_flight_lock:
                free = self.poll_threads - self._in_flight
            asked = min(free, batch)
            claimed = []
            wait = self.tick_seconds
            try:
                if asked > 0:
                    claimed = self.leases.claim(POLL, limit=asked)
                    with self._in_flight_lock:
                        self._in_flight += len(claimed)
                    for lease in claimed:
                        pool.submit(self._poll_job, lease)
                    if len(claimed) == asked:
                        continue  # there may be more due right now
                    nxt = self.leases.next_due_in(POLL)
                    if nxt is not None:
                        wait = min(wait, max(nxt + WAKE_SLACK, MIN_WAIT))
            except SyndicatorError as exc:  # the database went away: try again next tick
                log.error("worker %s: %s", self.holder, exc)
                wait = self.tick_seconds
            # sleep until the next slot, or until a poll thread frees up (all busy), at most one tick
            self._poll_done.wait(wait)
            if stop.is_set():
                break

    def _poll_job(self, lease: Lease) -> None:
        """One claimed poll on a poll thread; never raises (a failure gives the lease back)."""
        try:
            if self._stop.is_set():
                self.leases.release(lease)
                return
            self._poll(lease, TickReport())
        except Exception as exc:
            log.exception("%s: poll failed: %s", lease.key, exc)
            try:
                self.leases.release(lease, self.leases.now() + timedelta(seconds=self.tick_seconds))
            except SyndicatorError:
                pass  # the lease runs out; another worker redoes the slot
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
            self._poll_done.set()

    def _loop(self, stop: threading.Event, step: Callable[[threading.Event | None], TickReport]) -> None:
        while not stop.is_set():
            try:
                report = step(stop)
            except SyndicatorError as exc:  # the database went away: try again next tick
                log.error("worker %s: %s", self.holder, exc)
                report = TickReport()
            if not report.worked:
                stop.wait(self.tick_seconds)

    def tick(self, stop: threading.Event | None = None) -> TickReport:
        """One round of everything: due polls (a few), then due renders, then the digest."""
        report = self.tick_polls(stop)
        rendered = self.tick_renders(stop)
        report.renders, report.digests = rendered.renders, rendered.digests
        report.lost += rendered.lost
        report.errors += rendered.errors
        return report

    def tick_polls(self, stop: threading.Event | None = None) -> TickReport:
        """Claim a few due polls and do them."""
        report = TickReport()
        for lease in self.leases.claim(POLL, limit=self.settings.cluster.poll_batch):
            if stop is not None and stop.is_set():
                self.leases.release(lease)
                continue
            self._poll(lease, report)
        return report

    def tick_renders(self, stop: threading.Event | None = None) -> TickReport:
        """Claim the due renders and do them, then the digest when it is due."""
        report = TickReport()
        if stop is not None and stop.is_set():
            return report
        renders = self.leases.claim(RENDER, limit=self.settings.cluster.render_batch)
        if renders:
            self._render(renders, report)
        if self.digest is not None:
            self._maybe_digest(report)
        return report

    def sync_source(self, name: str, *, full: bool = False, progress: Progress | None = None,
                    wait: float = 600.0) -> SyncReport:
        """Poll one source now under its poll lease, whatever its slot (see ``sync_by_claims``)."""
        from .sync import sync

        self.leases.ensure(POLL, [name], self.leases.now())  # a source new in the config gets its row
        deadline = monotonic() + wait
        while not (got := self.leases.claim(POLL, keys=[name])):
            if monotonic() >= deadline:
                raise LockHeld(f"{name}: a worker held its poll lease for more than {wait:.0f}s; try again later")
            time_mod.sleep(0.05)  # a worker is polling it right now: its poll ends in moments
        lease = got[0]
        log.info("%s: polled by claim (holder=%s); the workers' slot stays %s", name, self.holder,
                 lease.due_at.isoformat())
        try:
            with self._holding(lease):
                sync_report, _ = sync(self.settings, self.repo, names=[name], full=full, render=False,
                                      progress=progress)
        except BaseException:
            self.leases.release(lease)
            raise
        failures, _ = self.repo.schedule_state(name)
        if not failures:
            self.repo.set_next_due(name, lease.due_at)  # `status` shows the workers' slot, not the shell's guess
        if not self.leases.complete(lease, lease.due_at):  # an extra poll: the schedule is unchanged
            log.warning("%s: lease lost during the poll (another worker took it over)", name)
        return sync_report

    # -- work -----------------------------------------------------------------------------------
    def _poll(self, lease: Lease, report: TickReport) -> None:
        from .scheduler import Timing, next_due  # the service's backoff, shared (imports APScheduler)
        from .sync import sync  # sync imports the source modules; keep this module light

        try:
            src = self.settings.source(lease.key)
        except ConfigError:
            self.leases.complete(lease, None)  # removed from config since the row was made
            return
        with source_context(src.name):
            if lease.attempts > 1:
                report.takeovers += 1
                if self.metrics is not None:
                    self.metrics.takeover(POLL)
                log.warning("%s: taking over from %s (its lease ran out); polling again", src.name,
                            lease.previous_holder)
            claimed_at = lease.expires_at - self.leases.ttl  # the database's time of the claim
            late = (claimed_at - lease.due_at).total_seconds()
            log.info("%s: poll slot=%s holder=%s attempt=%d late=%.3fs", src.name, lease.due_at.isoformat(),
                     self.holder, lease.attempts, late)
            started = monotonic()
            try:
                with self._holding(lease):
                    sync_report, _ = sync(self.settings, self.repo, names=[src.name], render=False,
                                          stop=self._stop.is_set)
            except Interrupted:
                self.leases.release(lease)  # stopping: the slot stays due for the other workers
                log.info("%s: poll slot=%s dropped: stopping before the poll (the slot stays due)", src.name,
                         lease.due_at.isoformat())
                return
            report.polls += 1
            report.errors.extend(e for s in sync_report.sources for e in s.errors)
            # the database's time, without asking it again: claim time (expiry − lease length) + time spent
            took = monotonic() - started
            now = claimed_at + timedelta(seconds=took)
            failures, _ = self.repo.schedule_state(src.name)
            sr = sync_report.sources[0] if sync_report.sources else None
            skipped = 0
            if failures:  # back off like the single-process service; the grid restarts after recovery
                nxt = next_due(src, failures, now, Timing.from_settings(self.settings), self._rng)
                log.warning("%s: failed %d time(s) in a row; retrying at %s", src.name, failures,
                            nxt.isoformat(timespec="seconds"))
            else:
                nxt = next_slot(lease.due_at, src.interval_seconds, now)
                skipped = round((nxt - lease.due_at) / timedelta(seconds=src.interval_seconds)) - 1
                if skipped > 0:
                    log.warning("%s: %d slot(s) skipped after slot=%s (workers are behind)", src.name, skipped,
                                lease.due_at.isoformat())
            if sr is not None and sr.next_due is not None and sr.next_due > nxt:
                # a server's Retry-After, or a feed's ttl / max-age that lengthens the interval; a plain
                # "every" from the poll's end would only pull the source off its grid of slots
                # (the poll counts its interval from its own start: allow half an interval of slack)
                lengthened = sr.next_due > now + timedelta(seconds=src.interval_seconds * 1.5)
                if failures or lengthened:
                    nxt = sr.next_due
            self.repo.set_next_due(src.name, nxt)  # what `syndicator status` shows
            lost = not self.leases.complete(lease, nxt)
            if lost:
                report.lost += 1
                log.warning("%s: lease lost during the poll (another worker took it over)", src.name)
            if self.metrics is not None:
                from .scheduler import PollResult

                self.metrics.poll(PollResult(src.name, sr or SourceReport(src.name), bool(failures), took, nxt),
                                  late=late, skipped=skipped, lost=lost)

    def _render(self, leases: list[Lease], report: TickReport) -> None:
        started = monotonic()
        if self.metrics is not None:
            for _ in (x for x in leases if x.attempts > 1):
                self.metrics.takeover(RENDER)
        with self._holding(*leases):
            try:
                written = publish_keys(self.settings, self.repo, [x.key for x in leases])
            except SyndicatorError as exc:
                report.errors.append(str(exc))
                log.error("render: %s", exc)
                for lease in leases:
                    self.leases.release(lease, self.leases.now() + timedelta(seconds=self.tick_seconds * 5))
                return
        report.renders += len(leases)
        report.files += written
        lost = 0
        for lease in leases:
            if not self.leases.complete(lease, None, drop=True):
                lost += 1
        report.lost += lost
        if self.metrics is not None:
            self.metrics.render(len(leases), written, monotonic() - started, lost)
        log.info("render: %d outputs claimed, %d files changed", len(leases), written)

    def _maybe_digest(self, report: TickReport) -> None:
        assert self.digest is not None
        if monotonic() < self._digest_next_check:
            return
        self._digest_next_check = monotonic() + DIGEST_CHECK_SECONDS
        tz = ZoneInfo(self.settings.site.timezone)
        now = self.leases.now()
        today = now.astimezone(tz).date()
        if self._digest_day != today:
            due = datetime.combine(today, self.digest_at, tzinfo=tz)
            self.leases.ensure(DIGEST, [today.isoformat()], due)
            self._digest_day = today
        for lease in self.leases.claim(DIGEST, limit=1):
            day = date.fromisoformat(lease.key)
            log.info("digest %s: building (holder=%s attempt=%d)", day, self.holder, lease.attempts)
            with self._holding(lease):
                self.digest(day)
            report.digests += 1
            if self.metrics is not None:
                self.metrics.digests.inc()
            self.leases.request(RENDER, [SITE])  # the front page lists the latest digests
            if not self.leases.complete(lease, None):
                report.lost += 1

    @staticmethod
    def _render_keys(result: BatchResult) -> list[str]:
        return render_keys(result.changed_stories, result.changed_tags)

    def close(self) -> None:
        """Stop asking for renders from this repository's batches (the worker is done)."""
        if self._hook in self.repo.batch_hooks:
            self.repo.batch_hooks.remove(self._hook)

    # -- lease keeping --------------------------------------------------------------------------
    @contextmanager
    def _holding(self, *leases: Lease) -> Iterator[None]:
        with self._held_lock:
            for lease in leases:
                self._held[(lease.kind, lease.key)] = lease
        try:
            yield
        finally:
            with self._held_lock:
                for lease in leases:
                    self._held.pop((lease.kind, lease.key), None)

    def _renew_loop(self, stop: threading.Event) -> None:
        every = max(0.2, self.leases.ttl.total_seconds() / 3)
        while not stop.wait(every):
            with self._held_lock:
                held = list(self._held.values())
            for lease in held:
                try:
                    renewed = self.leases.renew(lease)
                except SyndicatorError as exc:
                    log.warning("lease renewal failed: %s", exc)
                    continue
                with self._held_lock:
                    if (lease.kind, lease.key) in self._held:
                        if renewed is None:
                            log.warning("%s %s: lease lost (taken over)", lease.kind, lease.key)
                            self._held.pop((lease.kind, lease.key), None)
                        else:
                            self._held[(lease.kind, lease.key)] = renewed

    def _release_all(self) -> None:
        with self._held_lock:
            held = list(self._held.values())
            self._held.clear()
        for lease in held:
            try:
                self.leases.release(lease)
            except SyndicatorError:
                pass


# -- a shell `syndicator sync` beside running workers ----------------------------------------------------------

def uses_claims(repo: Repository) -> bool:
    """Whether a shell `sync` must take the workers' claims: PostgreSQL where workers run or have run.

    Workers hold the service lock shared while they run; the poll rows they made stay after they stop (a
    worker may start again at any moment, and a sync that polled by claims keeps their schedule right).
    """
    if repo.engine.dialect.name != "postgresql":
        return False
    if locks.shared_holders(repo.engine, locks.RUN_LOCK):
        return True
    return Leases(repo.engine, "probe").count(POLL) > 0


def sync_by_claims(
    settings: Settings, repo: Repository, *, names: tuple[str, ...] | list[str] = (), full: bool = False,
    progress: Progress | None = None, wait: float = 600.0,
) -> SyncReport:
    """`syndicator sync` on a database that workers share: the same claims as a worker, nothing done twice.

    Each source is polled while holding its poll lease (a worker polling it right now is waited for, at most
    ``wait`` seconds; while the shell holds it no worker polls it). The shell's poll is an extra one: the
    lease is completed with its slot unchanged, so the workers' schedule stays as it was. The batches
    request their renders in their own transactions, like a worker's; the shell then renders the requested
    outputs it can claim, and those a worker is rendering at that moment are left to it (they stay due).
    """
    worker = Worker(settings, repo, holder=f"{default_holder()}:sync")
    worker.digest = None  # the daily digest is the workers' (and `syndicator digest`'s) job
    stop = threading.Event()
    renewer = threading.Thread(target=worker._renew_loop, args=(stop,), name="lease-renewer", daemon=True)
    renewer.start()
    started = monotonic()
    report = SyncReport()
    try:
        chosen = [settings.source(n) for n in names] if names else [s for s in settings.sources if s.enabled]
        for src in chosen:
            report.sources.extend(worker.sync_source(src.name, full=full, progress=progress, wait=wait).sources)
        while True:  # the renders the batches asked for, by claim (a worker may take some of them)
            rendered = worker.tick_renders()
            report.feeds_written += rendered.files
            if not rendered.renders:
                break
    finally:
        stop.set()
        renewer.join(timeout=5)
        worker._release_all()
        worker.close()
    report.seconds = monotonic() - started
    return report

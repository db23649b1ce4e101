"""The service's scheduler: one APScheduler 3 job ("tick") that asks the database which sources are due.

Due times live in the database (``source_state.next_due``), not in APScheduler's memory: a restart resumes
the schedule, and ``syndicator status`` shows it. The tick runs every ``schedule.tick`` with
``coalesce=True``, ``max_instances=1`` and a misfire grace, so a long sync never stacks ticks up.

When a source is due:
- success → next poll at ``every`` (or the next ``cron`` time) plus a random jitter, so sources that share
  an interval drift apart instead of firing together;
- failure → exponential backoff: ``max(backoff_base, every) × 2^(failures−1)``, plus jitter, at most
  ``backoff_max``; a success resets it. The error stays in the source state for ``status`` and /healthz.

Each tick holds the writer's turn (storage lock ``sync``) while it syncs, so `syndicator sync` from a shell
takes turns with it. Outputs are re-rendered once per tick, only those whose stories changed; the first tick
renders everything only when a run died before its render (the recovery marker) or the outputs were not
published with the current settings (``publish`` sees that), so a restart on current outputs writes nothing.

Watched archives (``watch.py``) hand the ticker the paths that changed (``Ticker.hint``); the ticker wakes the
tick job after ``schedule.watch_delay`` (changes within that window are polled together) and polls just those
paths, without moving the source's schedule: the regular poll stays a full scan, the safety net for events
the watcher missed. Hints that arrive during a poll are polled right after it.

A second job makes the daily digest at ``digest.time`` (``site.timezone``), in the writer's turn too; a
service started after that time makes it once at start (the e-mail is still sent at most once a day).
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import SchedulerNotRunningError
from apscheduler.triggers.cron import CronTrigger

from . import clock, recovery
from .config import Settings, SourceSettings
from .digest import run_daily_digest, warm_latest_day
from .errors import ConfigError, Interrupted, LockHeld
from .logs import source_context
from .publish import publish
from .storage import locks
from .storage.repo import Repository
from .sync import Changes, sync
from .types import SourceReport, SyncReport

log = logging.getLogger(__name__)
SERVICE_ROLE = "scheduler"
RUN_LOCK = locks.RUN_LOCK
SYNC_LOCK = locks.SYNC_LOCK
CRON_JITTER_SECONDS = 60.0  # cron sources: at most this × jitter fraction after the planned minute
MAX_HINTS = 10_000  # hinted paths of one source kept for its next poll; more, and it is scanned in full


def cron_trigger(src: SourceSettings) -> CronTrigger | None:
    """The source's crontab expression as a trigger (in the source's timezone); ConfigError if invalid."""
    if src.cron is None:
        return None
    try:
        return CronTrigger.from_crontab(src.cron, timezone=ZoneInfo(src.timezone))
    except ValueError as exc:
        raise ConfigError(f"bad crontab expression {src.cron!r}: {exc}", key=f"sources[{src.name}].cron") from None


@dataclass(frozen=True, slots=True)
class Timing:
    """The schedule knobs, in seconds (from ``schedule:`` in the config)."""

    jitter: float = 0.1
    backoff_base: float = 60.0
    backoff_max: float = 6 * 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Timing:
        s = settings.schedule
        return cls(s.jitter, s.seconds("backoff_base"), s.seconds("backoff_max"))


def next_due(
    src: SourceSettings, failures: int, now: datetime, timing: Timing, rng: random.Random
) -> datetime:
    """When to poll ``src`` next, after a poll at ``now`` that left ``failures`` consecutive failures."""
    interval = src.interval_seconds
    if failures > 0:
        base = timing.backoff_base if src.cron is not None else max(timing.backoff_base, interval)
        delay = base * 2 ** min(failures - 1, 40)
        delay = min(timing.backoff_max, delay * (1 + rng.uniform(0, timing.jitter)))
        return now + timedelta(seconds=delay)
    trigger = cron_trigger(src)
    if trigger is not None:
        fire: datetime | None = trigger.get_next_fire_time(None, now)
        if fire is not None:
            return fire + timedelta(seconds=rng.uniform(0, timing.jitter * CRON_JITTER_SECONDS))
    return now + timedelta(seconds=interval * (1 + rng.uniform(0, timing.jitter)))


@dataclass(slots=True)
class PollResult:
    """One poll of one source, for metrics and logs."""

    source: str
    report: SourceReport
    failed: bool
    seconds: float
    next_due: datetime


Listener = Callable[[PollResult], None]


@dataclass
class Ticker:
    """The tick job: poll the due sources, store their next due time, re-render what changed."""

    settings: Settings
    repo: Repository
    stop: threading.Event
    on_poll: Listener | None = None
    rng: random.Random = field(default_factory=random.Random)
    rendered_once: bool = False
    waiting: bool = False  # the writer's turn was taken by another process at the last tick
    last_failure: str | None = None  # the error of the last tick that failed as a whole
    # the service's own process: the repository keeps busy digest days, and after the first tick the newest
    # day is loaded and start-up's objects are frozen for the collector
    long_running: bool = False
    wake: Callable[[float], None] | None = None  # run the tick in that many seconds (set by ``start``)
    # source → relative paths a watcher saw change since the last poll (None: scan it in full)
    _hints: dict[str, set[str] | None] = field(default_factory=dict)
    _hints_lock: threading.Lock = field(default_factory=threading.Lock)
    _woken: bool = False  # a wake is pending for the hints gathered so far

    @property
    def sources(self) -> list[SourceSettings]:
        return [s for s in self.settings.sources if s.enabled]

    def prepare(self) -> None:
        """Register the sources; a source never polled gets a due time within its first jitter window."""
        if self.long_running:
            self.repo.remember_busy_days()  # today's digest page is re-rendered after every change
        now = clock.now()
        timing = Timing.from_settings(self.settings)
        for src in self.sources:
            cron_trigger(src)  # a bad expression stops `run` before anything starts
            self.repo.ensure_source(src.name, src.type, str(src.path or src.url))
            _, due = self.repo.schedule_state(src.name)
            if due is None:
                spread = min(src.interval_seconds, 60.0) * timing.jitter
                self.repo.set_next_due(src.name, now + timedelta(seconds=self.rng.uniform(0, spread)))

    def hint(self, source: str, path: str | None) -> None:
        """A watched archive changed at ``path`` (relative, as ``archive.walk`` gives it; None: something a
        path cannot describe, such as a folder moved, so the source is scanned in full). Called from the
        watcher's thread; the first hint of a batch wakes the tick after ``schedule.watch_delay``."""
        with self._hints_lock:
            paths = self._hints.get(source, set())
            if path is None or paths is None or len(paths) >= MAX_HINTS:
                self._hints[source] = None
            else:
                paths.add(path)
                self._hints[source] = paths
            wake, self._woken = not self._woken, True
        if wake and self.wake is not None:
            self.wake(self.settings.schedule.seconds("watch_delay"))

    def _take_hints(self) -> dict[str, set[str] | None]:
        """The hints gathered so far (later ones go to the next poll)."""
        with self._hints_lock:
            hints, self._hints, self._woken = self._hints, {}, False
        return hints

    def _has_hints(self) -> bool:
        with self._hints_lock:
            return bool(self._hints)

    def tick(self) -> None:
        """One tick, then one more per batch of hints that came in meanwhile; never raises (a failing tick is
        logged and the next one tries again)."""
        self._tick_once()
        while self._has_hints() and not self.waiting and not self.stop.is_set() and self.last_failure is None:
            self.stop.wait(self.settings.schedule.seconds("watch_delay"))
            self._tick_once()

    def _tick_once(self) -> None:
        try:
            self._tick()
        except Interrupted as exc:
            log.info("%s", exc)
        except Exception as exc:
            # e.g. the database went away: full details once, then one line per tick until it recovers
            text = f"{type(exc).__name__}: {exc}"
            if text != self.last_failure:
                log.exception("tick failed; the next tick retries")
            else:
                log.warning("tick failed again: %s", text.splitlines()[0][:300])
            self.last_failure = text
        else:
            self.last_failure = None

    def _tick(self) -> None:
        if self.stop.is_set():
            return
        started = time.monotonic()
        self.repo.service_ticked(SERVICE_ROLE)
        due = self.repo.due_sources([s.name for s in self.sources], clock.now())
        if not due and self.rendered_once and not self._has_hints():
            return
        try:
            turn = locks.acquire(self.repo.engine, SYNC_LOCK)
        except LockHeld:
            if not self.waiting:  # once per wait, not once per tick
                # the holder may be this service's own digest job as well as another process's sync or render
                log.info("the writer's turn is taken (a sync, render or digest is writing); polling after it is done")
            self.waiting = True
            return
        self.waiting = False
        with turn:
            # a tick that died (killed, or an error) between its commits and its render left a marker
            pending = recovery.begin(self.settings.output.dir)
            hints = self._take_hints()
            changes = Changes()
            polled = 0
            for name in due:
                if self.stop.is_set():
                    break
                hints.pop(name, None)  # a full scan sees every change
                self._poll(self.settings.source(name), changes)
                polled += 1
            for name, paths in hints.items():
                if self.stop.is_set():
                    break
                if any(s.name == name for s in self.sources):
                    self._poll(self.settings.source(name), changes, only=paths, scheduled=False)
                    polled += 1
            # everything only after a crash; outputs published with other settings (or never) are noticed
            # by publish itself, which then renders everything too
            written = publish(self.settings, self.repo, changes=None if pending.recovering else changes)
            pending.finish()
            if written:
                log.info("wrote %d output files (%d stories changed)", written, len(changes.stories))
            if not self.rendered_once:
                self.rendered_once = True
                log.info("first tick done in %.2fs (%d source(s) polled, %d output files written)",
                         time.monotonic() - started, polled, written)
                if self.long_running:
                    # the first change after a restart is then as fast as the next ones
                    warm_latest_day(self.settings, self.repo)
                    # what start-up made (modules, mappings, templates: ~100,000 objects) lives as long as
                    # the process: the collector stops walking it, and a full collection during a watched
                    # change takes ~8 ms instead of ~70 (measured at 100,000 stories)
                    gc.collect()
                    gc.freeze()

    def _poll(
        self, src: SourceSettings, total: Changes, *, only: set[str] | None = None, scheduled: bool = True
    ) -> None:
        """Poll one source; ``scheduled=False`` (a watcher's hints, just ``only`` when given) leaves its
        schedule as it was."""
        with source_context(src.name):
            started_at = clock.now()
            started = time.monotonic()
            hinted = {src.name: only} if only is not None else None
            # Interrupted propagates: the source keeps its due time and is polled first after a restart
            try:
                report, changes = sync(self.settings, self.repo, names=[src.name], render=False, stop=self.stop.is_set,
                                       only=hinted)
            except Interrupted:
                raise
            except Exception as exc:  # a bug in one source's code must not stop the others, nor retry every tick
                log.exception("%s: unexpected error", src.name)
                self.repo.record_attempt(src.name, error=f"unexpected {type(exc).__name__}: {exc}")
                report, changes = SyncReport([SourceReport(src.name, errors=[str(exc)])]), Changes()
            total.merge(changes)
            failures, due = self.repo.schedule_state(src.name)
            if scheduled or due is None:
                due = next_due(src, failures, started_at, Timing.from_settings(self.settings), self.rng)
            sr = report.sources[0] if report.sources else SourceReport(src.name)
            if sr.next_due is not None and sr.next_due > due:  # a server's Retry-After or a feed's own ttl
                due = sr.next_due
            if scheduled:
                self.repo.set_next_due(src.name, due)
            seconds = time.monotonic() - started
            if failures and scheduled:
                log.warning("%s: failed %d time(s) in a row; retrying at %s", src.name, failures,
                            due.isoformat(timespec="seconds"))
            elif scheduled:
                log.debug("%s: next poll at %s", src.name, due.isoformat(timespec="seconds"))
            else:
                log.debug("%s: polled %s changed path(s) in %.3fs", src.name,
                          "all" if only is None else len(only), seconds)
            if self.on_poll is not None:
                self.on_poll(PollResult(src.name, sr, failures > 0, seconds, due))


class _QuietSkips(logging.Filter):
    """APScheduler warns on every tick skipped while a long sync runs; that is the design, not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def start(ticker: Ticker, settings: Settings) -> BackgroundScheduler:
    """Start the background scheduler running ``ticker.tick`` (first tick right away); ``ticker.wake`` brings
    the next tick forward (a watcher's hints)."""
    logging.getLogger("apscheduler.scheduler").addFilter(_QuietSkips())
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        ticker.tick, "interval", id="tick", seconds=settings.schedule.seconds("tick"),
        coalesce=True, max_instances=1, misfire_grace_time=max(1, int(settings.schedule.seconds("misfire_grace"))),
        next_run_time=clock.now(),
    )
    add_digest_job(scheduler, ticker)

    def wake(delay: float) -> None:
        # APScheduler's own clock, not clock.now() (tests move that one); a tick running at that moment makes
        # this run a skipped one, and the running tick polls the hints when it is done (Ticker.tick)
        try:
            scheduler.modify_job("tick", next_run_time=datetime.now(UTC) + timedelta(seconds=delay))
        except (JobLookupError, SchedulerNotRunningError):
            pass  # stopping

    ticker.wake = wake
    scheduler.start()
    return scheduler


# -- the daily digest job (``digest.time``, local time) -----------------------------------------------------

DIGEST_MISFIRE_GRACE = 3600  # seconds: a digest job delayed by a long tick still runs
DIGEST_LOCK_WAIT = 1800.0  # seconds the job waits for the writer's turn before giving up until the next run


def add_digest_job(scheduler: BackgroundScheduler, ticker: Ticker) -> None:
    """The daily digest job at ``digest.time`` (when ``digest.enabled``); it runs once right away when the
    service starts after today's ``digest.time``."""
    settings = ticker.settings
    if not settings.digest.enabled:
        return
    job = DigestJob(settings, ticker.repo, ticker.stop, ready=lambda: ticker.rendered_once)
    now = clock.now()
    catch_up: dict[str, Any] = {"next_run_time": now} if digest_missed(settings, now) else {}
    scheduler.add_job(job.run, digest_trigger(settings), id="digest", coalesce=True, max_instances=1,
                      misfire_grace_time=DIGEST_MISFIRE_GRACE, **catch_up)


def digest_trigger(settings: Settings) -> CronTrigger:
    """Every day at ``digest.time`` in ``site.timezone``."""
    hour, minute = settings.digest.hour_minute
    return CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(settings.site.timezone))


def digest_missed(settings: Settings, now: datetime) -> bool:
    """True when today's ``digest.time`` has passed locally: a service started later makes (and, when e-mail
    is on, sends) the digest once at start; the e-mail state in the database prevents a second send."""
    local = now.astimezone(ZoneInfo(settings.site.timezone))
    return (local.hour, local.minute) >= settings.digest.hour_minute


@dataclass
class DigestJob:
    """The daily digest: ``run_daily_digest`` in the writer's turn; never raises (logged instead)."""

    settings: Settings
    repo: Repository
    stop: threading.Event
    ready: Callable[[], bool] = lambda: True  # the service: true once its first tick synced and rendered

    def run(self) -> None:
        try:
            with self._turn():
                result = run_daily_digest(self.settings, self.repo)
            log.info("%s", result.summary())
        except LockHeld:
            if self.stop.is_set():
                log.info("digest: stopping before it was made; the next start catches up")
            else:
                log.warning("digest: the writer's turn stayed busy for %.0fs; the next run makes it", DIGEST_LOCK_WAIT)
        except Exception:
            log.exception("digest job failed; `syndicator digest --email` or the next run retries")

    def _turn(self) -> locks.Lock:
        """The writer's turn, once the service's first tick is done (a digest made at start must neither take
        the first turn from the sync nor miss what that sync finds)."""
        deadline = time.monotonic() + DIGEST_LOCK_WAIT
        while True:
            if self.ready():
                try:
                    return locks.acquire(self.repo.engine, SYNC_LOCK, wait=1.0)
                except LockHeld:
                    pass
            else:
                self.stop.wait(0.5)
            if self.stop.is_set() or time.monotonic() >= deadline:
                raise LockHeld("the writer's turn did not come")

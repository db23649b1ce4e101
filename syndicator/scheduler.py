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
re-renders everything that differs from the database (catching up after a crash or an interrupted sync).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from . import clock
from .config import Settings, SourceSettings
from .errors import ConfigError, Interrupted, LockHeld
from .logs import source_context
from .publish import publish
from .storage import locks
from .storage.repo import Repository
from .sync import Changes, sync
from .types import SourceReport

log = logging.getLogger(__name__)
SERVICE_ROLE = "scheduler"
RUN_LOCK = locks.RUN_LOCK
SYNC_LOCK = locks.SYNC_LOCK
CRON_JITTER_SECONDS = 60.0  # cron sources: at most this × jitter fraction after the planned minute


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

    @property
    def sources(self) -> list[SourceSettings]:
        return [s for s in self.settings.sources if s.enabled]

    def prepare(self) -> None:
        """Register the sources; a source never polled gets a due time within its first jitter window."""
        now = clock.now()
        timing = Timing.from_settings(self.settings)
        for src in self.sources:
            cron_trigger(src)  # a bad expression stops `run` before anything starts
            self.repo.ensure_source(src.name, src.type, str(src.path or src.url))
            _, due = self.repo.schedule_state(src.name)
            if due is None:
                spread = min(src.interval_seconds, 60.0) * timing.jitter
                self.repo.set_next_due(src.name, now + timedelta(seconds=self.rng.uniform(0, spread)))

    def tick(self) -> None:
        """One tick; never raises (a failing tick is logged and the next one tries again)."""
        try:
            self._tick()
        except Interrupted as exc:
            log.info("%s", exc)
        except Exception:
            log.exception("tick failed; the next tick retries")

    def _tick(self) -> None:
        if self.stop.is_set():
            return
        self.repo.service_ticked(SERVICE_ROLE)
        due = self.repo.due_sources([s.name for s in self.sources], clock.now())
        if not due and self.rendered_once:
            return
        try:
            turn = locks.acquire(self.repo.engine, SYNC_LOCK)
        except LockHeld:
            log.info("another process is syncing this database; polling after it is done")
            return
        with turn:
            changes = Changes()
            for name in due:
                if self.stop.is_set():
                    break
                self._poll(self.settings.source(name), changes)
            if not self.rendered_once:
                written = publish(self.settings, self.repo, changes=None)
                self.rendered_once = True
            else:
                written = publish(self.settings, self.repo, changes=changes)
            if written:
                log.info("wrote %d output files (%d stories changed)", written, len(changes.stories))

    def _poll(self, src: SourceSettings, total: Changes) -> None:
        with source_context(src.name):
            started_at = clock.now()
            started = time.monotonic()
            # Interrupted propagates: the source keeps its due time and is polled first after a restart
            report, changes = sync(self.settings, self.repo, names=[src.name], render=False, stop=self.stop.is_set)
            total.stories |= changes.stories
            total.tags |= changes.tags
            failures, _ = self.repo.schedule_state(src.name)
            due = next_due(src, failures, started_at, Timing.from_settings(self.settings), self.rng)
            sr = report.sources[0] if report.sources else SourceReport(src.name)
            if sr.next_due is not None and sr.next_due > due:  # a server's Retry-After or a feed's own ttl
                due = sr.next_due
            self.repo.set_next_due(src.name, due)
            seconds = time.monotonic() - started
            if failures:
                log.warning("%s: failed %d time(s) in a row; retrying at %s", src.name, failures,
                            due.isoformat(timespec="seconds"))
            else:
                log.debug("%s: next poll at %s", src.name, due.isoformat(timespec="seconds"))
            if self.on_poll is not None:
                self.on_poll(PollResult(src.name, sr, failures > 0, seconds, due))


class _QuietSkips(logging.Filter):
    """APScheduler warns on every tick skipped while a long sync runs; that is the design, not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def start(ticker: Ticker, settings: Settings) -> BackgroundScheduler:
    """Start the background scheduler running ``ticker.tick`` (first tick right away)."""
    logging.getLogger("apscheduler.scheduler").addFilter(_QuietSkips())
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        ticker.tick, "interval", id="tick", seconds=settings.schedule.seconds("tick"),
        coalesce=True, max_instances=1, misfire_grace_time=max(1, int(settings.schedule.seconds("misfire_grace"))),
        next_run_time=clock.now(),
    )
    scheduler.start()
    return scheduler

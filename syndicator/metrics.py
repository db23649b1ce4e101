"""``/metrics`` in the Prometheus text format (prometheus-client), on a registry of the service's own.

Counters are counted as polls happen (polls, failures, articles new/updated, sync duration); gauges are read
at scrape time from the database (each source's failures, last success, next due, articles) and from the
output folder (bytes per feed file), so they are right even after a `syndicator sync` from a shell.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import Settings
from .scheduler import PollResult
from .server import WSGIApp
from .storage.leases import Leases
from .storage.repo import Repository

log = logging.getLogger(__name__)
FEED_SUFFIXES = (".atom", ".rss")
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _StateCollector(Collector):
    def __init__(self, settings: Settings, repo: Repository) -> None:
        self.settings = settings
        self.repo = repo

    def collect(self) -> Iterator[Metric]:
        out: Path = self.settings.output.dir
        size = GaugeMetricFamily("syndicator_feed_bytes", "Size of each feed file served", labels=["feed"])
        if out.is_dir():
            for path in sorted(p for p in out.rglob("*") if p.suffix in FEED_SUFFIXES and p.is_file()):
                size.add_metric([path.relative_to(out).as_posix()], path.stat().st_size)
        yield size
        failures = GaugeMetricFamily("syndicator_source_consecutive_failures", "Failed polls in a row", labels=["source"])
        success = GaugeMetricFamily("syndicator_source_last_success_timestamp_seconds", "Last successful poll",
                                    labels=["source"])
        due = GaugeMetricFamily("syndicator_source_next_due_timestamp_seconds", "Next planned poll", labels=["source"])
        articles = GaugeMetricFamily("syndicator_source_articles", "Live articles stored", labels=["source"])
        try:
            for st in self.repo.source_status():
                failures.add_metric([st.name], st.consecutive_failures)
                articles.add_metric([st.name], st.articles)
                if st.last_success is not None:
                    success.add_metric([st.name], st.last_success.timestamp())
                if st.next_due is not None:
                    due.add_metric([st.name], st.next_due.timestamp())
        except Exception as exc:  # the scrape still answers with what it has
            log.warning("metrics: cannot read the sources: %s", exc)
        yield from (failures, success, due, articles)


class Metrics:
    """The service's metrics; ``observe`` is the scheduler's poll listener."""

    def __init__(self, settings: Settings, repo: Repository) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("syndicator_polls", "Source polls", ["source"], registry=r)
        self.failures = Counter("syndicator_poll_failures", "Source polls that failed", ["source"], registry=r)
        self.new = Counter("syndicator_articles_new", "New articles stored", ["source"], registry=r)
        self.updated = Counter("syndicator_articles_updated", "Articles whose content changed", ["source"], registry=r)
        self.duration = Histogram("syndicator_sync_duration_seconds", "Time to sync one source", ["source"],
                                  buckets=DURATION_BUCKETS, registry=r)
        for src in settings.sources:  # every series exists from the start, at 0
            for metric in (self.polls, self.failures, self.new, self.updated):
                metric.labels(source=src.name)
        r.register(_StateCollector(settings, repo))

    def observe(self, poll: PollResult) -> None:
        self.polls.labels(source=poll.source).inc()
        if poll.failed:
            self.failures.labels(source=poll.source).inc()
        self.new.labels(source=poll.source).inc(poll.report.new)
        self.updated.labels(source=poll.source).inc(poll.report.updated)
        self.duration.labels(source=poll.source).observe(poll.seconds)

    def wsgi_app(self) -> WSGIApp:
        app: WSGIApp = make_wsgi_app(self.registry)
        return app


LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class _LeaseCollector(Collector):
    """Scrape-time gauges of the lease table: work due now (held or not), per kind."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases

    def collect(self) -> Iterator[Metric]:
        due = GaugeMetricFamily("syndicator_worker_due", "Lease rows due now (polls behind, renders waiting)",
                                labels=["kind"])
        try:
            for kind in ("poll", "render"):
                due.add_metric([kind], self.leases.due_count(kind))
        except Exception as exc:  # the scrape still answers with what it has
            log.warning("metrics: cannot read the leases: %s", exc)
        yield due


class WorkerMetrics(Metrics):
    """A scale-out worker's ``/metrics``: the service's poll metrics plus slots, leases and renders.

    ``syndicator_polls`` etc. count this worker's polls only (sum them over the workers); the per-source
    state gauges read the shared database, so every worker reports the same values for them.
    """

    def __init__(self, settings: Settings, repo: Repository, leases: Leases) -> None:
        super().__init__(settings, repo)
        r = self.registry
        self.skipped = Counter("syndicator_worker_skipped_slots", "Slots of a source that passed unpolled (behind)",
                               ["source"], registry=r)
        self.late = Histogram("syndicator_worker_poll_lateness_seconds", "Claim time minus the slot's due time",
                              buckets=LATENESS_BUCKETS, registry=r)
        self.takeovers = Counter("syndicator_worker_lease_takeovers", "Work taken over from a holder whose lease ran out",
                                 ["kind"], registry=r)
        self.lost = Counter("syndicator_worker_leases_lost", "Work finished after its lease had passed to another worker",
                            ["kind"], registry=r)
        self.renders = Counter("syndicator_worker_renders", "Outputs rendered by claim", registry=r)
        self.files = Counter("syndicator_worker_render_files_changed", "Output files whose bytes changed", registry=r)
        self.render_seconds = Histogram("syndicator_worker_render_seconds", "Time of one render round",
                                        buckets=DURATION_BUCKETS, registry=r)
        self.digests = Counter("syndicator_worker_digests", "Daily digests built by this worker", registry=r)
        self.in_flight = Gauge("syndicator_worker_polls_in_flight", "Polls running now", registry=r)
        for src in settings.sources:
            self.skipped.labels(source=src.name)
        for kind in ("poll", "render", "digest"):
            self.takeovers.labels(kind=kind)
            self.lost.labels(kind=kind)
        r.register(_LeaseCollector(leases))

    def poll(self, poll: PollResult, *, late: float, skipped: int, lost: bool) -> None:
        self.observe(poll)
        self.late.observe(max(late, 0.0))
        if skipped > 0:
            self.skipped.labels(source=poll.source).inc(skipped)
        if lost:
            self.lost.labels(kind="poll").inc()

    def takeover(self, kind: str) -> None:
        self.takeovers.labels(kind=kind).inc()

    def render(self, outputs: int, files: int, seconds: float, lost: int) -> None:
        self.renders.inc(outputs)
        self.files.inc(files)
        self.render_seconds.observe(seconds)
        if lost:
            self.lost.labels(kind="render").inc(lost)

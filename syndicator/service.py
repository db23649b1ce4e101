"""`syndicator run`: the scheduler and the HTTP server in one process, until SIGTERM or SIGINT.

Start: take the service lock (a second `run` on the same database refuses), record who runs it, register
the sources, start the HTTP server (feeds, /healthz, /metrics), the watcher of the archive folders (their
changes are polled at once) and the scheduler's tick.
Stop (SIGTERM/SIGINT): the watcher stops first; the tick finishes the file it is on, drops its unsaved
batch, and returns; nothing is half-written (each batch is one transaction, files are replaced atomically).
Exit 0 within a few seconds.
A second signal while stopping exits at once (the open transaction, if any, is rolled back by the database).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import LockHeld, SyndicatorError
from .health import healthz_app
from .metrics import Metrics
from .scheduler import RUN_LOCK, SERVICE_ROLE, Ticker, start
from .server import create_server
from .storage import locks
from .storage.repo import Repository

if TYPE_CHECKING:
    from .watch import Watcher

log = logging.getLogger(__name__)
WAIT_STEP = 0.5  # seconds between looks at the stop flag in the main thread


def _take_service_lock(repo: Repository) -> locks.Lock:
    try:
        return locks.acquire(repo.engine, RUN_LOCK)
    except LockHeld:
        workers = locks.shared_holders(repo.engine, RUN_LOCK)
        if workers:  # scale-out workers claim polls by lease; a scheduler beside them would poll again
            where = repo.engine.url.render_as_string(hide_password=True)
            raise LockHeld(
                f"{workers} scale-out worker(s) (`run --role worker`) are using {where}; a single-process "
                "`syndicator run` would poll their sources a second time: stop the workers first, or start "
                "this one as `run --role worker` (and `--role web` to serve)"
            ) from None
        info = repo.service_info(SERVICE_ROLE)
        who = ""
        if info is not None and info.stopped_at is None:
            who = f" (by {info.holder}, started {info.started_at:%Y-%m-%d %H:%M:%S} UTC)"
        where = repo.engine.url.render_as_string(hide_password=True)
        raise LockHeld(
            f"another `syndicator run` is already running on {where}{who}; stop it first "
            "(`syndicator sync` and `syndicator status` are safe to use meanwhile)"
        ) from None


def _http_server(settings: Settings, repo: Repository, metrics: Metrics, host: str, port: int) -> Any:
    routes = {"/healthz": healthz_app(settings, repo, SERVICE_ROLE), "/metrics": metrics.wsgi_app()}
    try:
        return create_server(settings.output.dir, host, port, routes)
    except OSError as exc:
        raise SyndicatorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _watch(ticker: Ticker) -> Watcher | None:
    """Watch the enabled archive sources that have ``watch`` on (the watcher's hints go to the ticker)."""
    folders = {s.name: s.path for s in ticker.sources if s.watched and s.path is not None}
    if not folders:
        return None
    from . import parallel, watch  # noqa: F401  (parallel: the normalizer, so the first change does not wait for it)

    watcher = watch.start(folders, ticker.hint)
    for name in watcher.watched:  # what changed while the service was stopped: one full scan in the first tick
        ticker.hint(name, None)
    return watcher


def run(settings: Settings, repo: Repository, *, host: str | None = None, port: int | None = None) -> int:
    """Run until asked to stop; returns the exit code (0)."""
    holder = f"{socket.gethostname()}:{os.getpid()}"
    with _take_service_lock(repo):
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if stop.is_set():
                log.warning("%s again: exiting now", signal.Signals(signum).name)
                os._exit(1)
            log.info("%s: stopping after the current file", signal.Signals(signum).name)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            repo.service_started(SERVICE_ROLE, holder)
            metrics = Metrics(settings, repo)
            ticker = Ticker(settings, repo, stop, on_poll=metrics.observe, long_running=True)
            ticker.prepare()
            settings.output.dir.mkdir(parents=True, exist_ok=True)
            server = None
            if settings.server.enabled:
                host = host or settings.server.host
                server = _http_server(settings, repo, metrics, host, settings.server.port if port is None else port)
                threading.Thread(target=server.run, name="http", daemon=True).start()
                base = f"http://{host}:{server.effective_port}/"
                log.info("serving %s at %s (all stories: %sall.atom; per tag: %stags/<slug>.atom; "
                         "health: %shealthz; metrics: %smetrics)", settings.output.dir, base, base, base, base, base)
            names = ", ".join(f"{s.name} ({'cron ' + s.cron if s.cron else 'every ' + s.every})" for s in ticker.sources)
            log.info("scheduler started by %s: %s", holder, names or "no enabled sources")
            watcher = _watch(ticker)  # before the first tick: what changes during its poll is polled after it
            try:
                scheduler = start(ticker, settings)
                while not stop.wait(WAIT_STEP):
                    pass
            finally:
                if watcher is not None:
                    watcher.stop()
            scheduler.shutdown(wait=True)  # waits for the running tick, which sees the stop flag
            if server is not None:
                server.close()
            repo.service_stopped(SERVICE_ROLE)
            log.info("stopped")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


def exit_now(code: int) -> None:
    """Leave the process once everything is stored and flushed, skipping the interpreter's final sweep.

    Tearing down the big dictionaries loaded at start (pinyin tables, SQLAlchemy, APScheduler) took seconds
    on a busy machine; a stopping service has nothing left to free, and the kernel reclaims it at once.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)

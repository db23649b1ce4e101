"""Process roles of `syndicator run`: ``all`` (one process does everything), ``worker`` and ``web``.

``worker`` and ``web`` exist for several processes on several hosts sharing one PostgreSQL database:
workers claim polls, renders and the digest (``coordination.Worker``); web nodes serve the outputs the
workers stored in the database (``server.StoredApp``), so they need no shared disk. SQLite is one file that
one process owns (the service's one-writer lock), so these roles are refused there.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

from .config import Settings
from .errors import ConfigError, SyndicatorError
from .server import Environ, StartResponse, StoredApp, create_app_server, stop_server

log = logging.getLogger(__name__)
ROLES = ("all", "worker", "web")


def check_role(settings: Settings, role: str) -> None:
    """Refuse a role this configuration cannot run (ConfigError: the CLI exits 2)."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r} (use one of: {', '.join(ROLES)})", key="--role")
    if role != "all" and settings.database.url.startswith("sqlite"):
        raise ConfigError(
            f"--role {role} needs PostgreSQL shared by every node; database.url is SQLite, which one "
            "`syndicator run` owns (drop --role, or set database.url to postgresql://…)",
            key="database.url",
        )


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop``: the current poll or render finishes, held leases are released."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_worker(settings: Settings, stop: threading.Event, *, metrics_host: str | None = None,
               metrics_port: int | None = None, **worker_options: Any) -> None:
    """Poll and render by claims until ``stop`` is set.

    The worker holds the service lock *shared* for its life: any number of workers at once, but never
    beside a single-process `syndicator run` (which holds it exclusive), whichever starts first.
    With ``metrics_port`` (or ``cluster.metrics_port``) it serves ``/metrics`` and ``/healthz`` there.
    """
    from .coordination import Worker
    from .storage.engine import open_database
    from .storage.repo import Repository

    check_role(settings, "worker")
    repo = Repository(open_database(settings.database.url))
    try:
        with _worker_lock(repo):
            worker = Worker(settings, repo, **worker_options)
            server = None
            try:
                port = settings.cluster.metrics_port if metrics_port is None else metrics_port
                if port is not None:
                    server = _metrics_server(settings, worker, metrics_host or settings.server.host, port)
                worker.run(stop)
            finally:
                if server is not None:
                    stop_server(server)
                worker.close()
    finally:
        repo.engine.dispose()


def _worker_lock(repo: Any) -> Any:
    """The service lock, shared: refused while a single-process `syndicator run` (role all) holds it."""
    from .errors import LockHeld
    from .storage import locks

    try:
        return locks.acquire(repo.engine, locks.RUN_LOCK, shared=True)
    except LockHeld:
        raise LockHeld(
            "a single-process `syndicator run` (role all) is running on this database; stop it before "
            "starting workers (they would both poll)"
        ) from None


def _metrics_server(settings: Settings, worker: Any, host: str, port: int) -> Any:
    """``/metrics`` (Prometheus text) and ``/healthz`` of a worker, on a thread of its own."""
    from .health import healthz_app
    from .metrics import WorkerMetrics

    metrics = WorkerMetrics(settings, worker.repo, worker.leases)
    metrics.in_flight.set_function(lambda: float(worker.in_flight))
    worker.metrics = metrics
    routes = {"/metrics": metrics.wsgi_app(), "/healthz": healthz_app(settings, worker.repo, "worker")}

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            return [b"not found\n"]
        return route(environ, start_response)

    try:
        server = create_app_server(app, host, port, threads=2)
    except OSError as exc:
        raise SyndicatorError(f"worker metrics: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    threading.Thread(target=server.run, name="metrics", daemon=True).start()
    log.info("worker metrics at http://%s:%s/metrics", server.effective_host, server.effective_port)
    return server


def web_app(settings: Settings) -> StoredApp:
    """The WSGI app of a web node: stored outputs, plus ``/healthz`` (can this node read the database?)."""
    from .storage.engine import open_database
    from .storage.outputs import DbOutputStore

    store = DbOutputStore(open_database(settings.database.url))

    def healthz(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            index = store.head("index.html")
            body: dict[str, object] = {"ok": True, "role": "web", "published": index is not None}
            status = "200 OK"
        except SyndicatorError as exc:
            body, status = {"ok": False, "role": "web", "error": str(exc)}, "503 Service Unavailable"
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                ("Cache-Control", "no-cache")])
        return [data]

    return StoredApp(store, {"/healthz": healthz})


def run_web(settings: Settings, stop: threading.Event, host: str | None = None, port: int | None = None,
            *, threads: int = 4) -> None:
    """Serve stored outputs until ``stop`` is set."""
    check_role(settings, "web")
    server = create_app_server(web_app(settings), host or settings.server.host,
                               settings.server.port if port is None else port, threads=threads)
    log.info("web node serving stored outputs at http://%s:%s/", server.effective_host, server.effective_port)
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        stop_server(server)
        thread.join(timeout=5)


def run_role(settings: Settings, role: str, *, host: str | None = None, port: int | None = None,
             stop: threading.Event | None = None) -> None:
    """Run a scale-out role in this process until SIGTERM/SIGINT (``all`` is the service's own `run`)."""
    check_role(settings, role)
    if role == "all":
        raise ConfigError("role `all` is the single-process service: run `syndicator run` without --role",
                          key="--role")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        stop_on_signals(stop)
    if role == "worker":
        run_worker(settings, stop, metrics_host=host, metrics_port=port)
    else:
        run_web(settings, stop, host, port)

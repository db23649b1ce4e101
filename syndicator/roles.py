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
from .server import Environ, StartResponse, StoredApp, create_app_server

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


def run_worker(settings: Settings, stop: threading.Event, **worker_options: Any) -> None:
    """Poll and render by claims until ``stop`` is set."""
    from .coordination import Worker
    from .storage.engine import open_database
    from .storage.repo import Repository

    check_role(settings, "worker")
    repo = Repository(open_database(settings.database.url))
    _no_single_process_service(repo)
    worker = Worker(settings, repo, **worker_options)
    try:
        worker.run(stop)
    finally:
        worker.close()
        repo.engine.dispose()


def _no_single_process_service(repo: Any) -> None:
    """Workers and a single-process `syndicator run` on one database would both poll: refuse to start."""
    from .errors import LockHeld
    from .storage import locks

    try:
        locks.acquire(repo.engine, locks.RUN_LOCK).release()
    except LockHeld:
        raise LockHeld(
            "a single-process `syndicator run` (role all) is running on this database; stop it before "
            "starting workers (they would both poll)"
        ) from None


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
        server.trigger.pull_trigger(server.close)  # closed inside the server's own loop thread
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
        run_worker(settings, stop)
    else:
        run_web(settings, stop, host, port)

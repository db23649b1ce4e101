"""What the service reports about itself: the sources table (``syndicator status``) and ``/healthz``.

Both read the database only, so they show the same thing whether the service runs or not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from . import clock
from .config import Settings
from .errors import SyndicatorError
from .server import Environ, StartResponse, WSGIApp
from .storage.repo import Repository, SourceStatus

log = logging.getLogger(__name__)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def state_of(st: SourceStatus, enabled: bool | None) -> str:
    """ok · failing · pending (never polled) · disabled (enabled: false, or a feed that answered 410 Gone) ·
    removed (no longer configured)."""
    if enabled is None:
        return "removed"
    if not enabled or st.disabled_reason:
        return "disabled"
    if st.consecutive_failures > 0:
        return "failing"
    if st.last_attempt is None:
        return "pending"
    return "ok"


def sources_table(settings: Settings, repo: Repository) -> list[dict[str, Any]]:
    """One JSON-ready row per source known to the database or the config."""
    enabled = {s.name: s.enabled for s in settings.sources}
    rows = []
    seen = set()
    for st in repo.source_status():
        seen.add(st.name)
        rows.append({
            "name": st.name, "type": st.type, "state": state_of(st, enabled.get(st.name)),
            "last_attempt": _iso(st.last_attempt), "last_success": _iso(st.last_success),
            "last_error": st.disabled_reason or (st.last_error if st.consecutive_failures else None),
            "consecutive_failures": st.consecutive_failures, "next_due": _iso(st.next_due),
            "articles": st.articles,
        })
    for s in settings.sources:
        if s.name not in seen:
            rows.append({
                "name": s.name, "type": s.type, "state": "pending" if s.enabled else "disabled",
                "last_attempt": None, "last_success": None, "last_error": None, "consecutive_failures": 0,
                "next_due": None, "articles": 0,
            })
    return rows


def health(settings: Settings, repo: Repository, role: str) -> tuple[bool, dict[str, Any]]:
    """(healthy, report): unhealthy when the database can't be read or every enabled source is failing."""
    try:
        sources = sources_table(settings, repo)
        info = repo.service_info(role)
    except SyndicatorError as exc:
        return False, {"ok": False, "error": str(exc)}
    except Exception as exc:  # a database that went away must still give an answer, not a traceback
        log.warning("healthz: %s", exc)
        return False, {"ok": False, "error": f"database: {exc.__class__.__name__}"}
    live = [r for r in sources if r["state"] in ("ok", "failing", "pending")]
    all_failing = bool(live) and all(r["state"] == "failing" for r in live)
    attempts = [r["last_attempt"] for r in sources if r["last_attempt"]]
    report: dict[str, Any] = {
        "ok": not all_failing,
        "status": "failing" if all_failing else ("degraded" if any(r["state"] == "failing" for r in live) else "ok"),
        "time": _iso(clock.now()),
        "last_run": max(attempts) if attempts else None,
        "service": None if info is None else {
            "holder": info.holder, "started_at": _iso(info.started_at), "last_tick_at": _iso(info.last_tick_at),
        },
        "sources": sources,
    }
    return not all_failing, report


def healthz_app(settings: Settings, repo: Repository, role: str) -> WSGIApp:
    """``/healthz``: 200 with the report as JSON, 503 when unhealthy (load balancers and systemd checks)."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        ok, report = health(settings, repo, role)
        body = (json.dumps(report, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
        start_response("200 OK" if ok else "503 Service Unavailable", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
        ])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app

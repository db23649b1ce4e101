"""Logging to stderr: human-readable lines by default, JSON lines with ``--log-format json``.

Every record can name the source it concerns: pass ``extra={"source": name}``, or log inside
``source_context(name)`` (the scheduler wraps each poll in it, so the sync code's own lines carry it too).
The JSON formatter is a few lines of the standard library: one object per line, no extra dependency.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

FORMATS = ("text", "json")
_source: contextvars.ContextVar[str | None] = contextvars.ContextVar("syndicator_source", default=None)


@contextmanager
def source_context(name: str) -> Iterator[None]:
    """Records logged inside the block name ``source`` = ``name`` (unless they name one themselves)."""
    token = _source.set(name)
    try:
        yield
    finally:
        _source.reset(token)


class _SourceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "source", None) is None:
            record.source = _source.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, source, message [, error]."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "source": getattr(record, "source", None),
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``12:00:01 INFO    [source] message``; the ``[source]`` part only when the message doesn't start with it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        source = getattr(record, "source", None)
        message = record.getMessage()
        if source and not message.startswith((source, f"[{source}]")):
            head, _, _ = line.partition(message)
            line = f"{head}[{source}] {line[len(head):]}"
        return line


def setup(level: int = logging.INFO, fmt: str = "text") -> None:
    """Send every log record to stderr in ``fmt`` (text or json); quieten the chatty libraries."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_SourceFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("alembic", "waitress", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

"""The one place time comes from. Tests replace `now` (``clock.set_now(...)``) instead of patching datetime."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return _now()


def set_now(func: Callable[[], datetime] | None) -> None:
    """Replace the clock (None restores the real one)."""
    global _now
    _now = func if func is not None else (lambda: datetime.now(UTC))

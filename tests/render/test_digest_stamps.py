"""The digest fingerprint's fast path formats times exactly as ``as_utc(value).isoformat()``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from syndicator.render.digest import _utc_seconds, fingerprint
from syndicator.render.feeds import as_utc


@pytest.mark.parametrize("value", [
    datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC),
    datetime(2024, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=8))),
    datetime(2024, 1, 1, 12, 0, 0, 999999),  # naive: taken as UTC
])
def test_utc_seconds_is_as_utc_isoformat(value: datetime) -> None:
    assert _utc_seconds(value) == as_utc(value).isoformat()


def test_fingerprint_is_the_same_for_the_same_instant_in_any_zone() -> None:
    t = datetime(2024, 5, 1, 3, 0, 0, 250000, tzinfo=UTC)
    assert fingerprint([("a", t)]) == fingerprint([("a", t.astimezone(timezone(timedelta(hours=8))))])

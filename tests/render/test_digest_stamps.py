"""The digest fingerprint: the same instant in any zone gives the same print, another microsecond another one
(two syncs within one second must not leave a day's digest page as it was)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from syndicator.render.digest import _utc_stamp, fingerprint


@pytest.mark.parametrize("value", [
    datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC),
    datetime(2024, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=8))),
    datetime(2024, 1, 1, 12, 0, 0, 999999),  # naive: taken as UTC
])
def test_utc_stamp_is_the_utc_instant_to_the_microsecond(value: datetime) -> None:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    assert _utc_stamp(value) == aware.astimezone(UTC).isoformat()
    assert datetime.fromisoformat(_utc_stamp(value)) == aware


def test_changes_within_one_second_change_the_fingerprint() -> None:
    t = datetime(2024, 5, 1, 3, 0, 0, 250000, tzinfo=UTC)
    assert fingerprint([("a", t)]) != fingerprint([("a", t + timedelta(microseconds=400000))])


def test_fingerprint_is_the_same_for_the_same_instant_in_any_zone() -> None:
    t = datetime(2024, 5, 1, 3, 0, 0, 250000, tzinfo=UTC)
    assert fingerprint([("a", t)]) == fingerprint([("a", t.astimezone(timezone(timedelta(hours=8))))])

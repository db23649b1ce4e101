"""Every date shape seen in the corpus, in the source's timezone → aware UTC.

Hand-written on purpose: the shapes are scraper artefacts (``2019-02-25- 06:24``, ``2019.02.21 16:48``,
``2019年3月2日 14:30``) that general parsers either reject or, worse, read as something else
(dateutil's fuzzy mode turns ``238RMB`` into a date). One anchored regex accepts exactly the shapes we
know, so a field that holds page text never becomes a wrong date.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

_CORE = (
    r"(?P<y>(?:19|20)\d\d)\s*[-./年]\s*(?P<m>\d{1,2})\s*[-./月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s*[-T,]?\s*(?P<H>\d{1,2})\s*[:：时]\s*(?P<M>\d{1,2})(?:\s*[:：分]\s*(?P<S>\d{1,2})(?:\.\d+)?)?\s*秒?)?"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d\d:?\d\d)?"
)
_FIELD = re.compile(r"^\s*" + _CORE + r"\s*$", re.IGNORECASE)
# In a body, a date needs its year and an explicit day marker (年月日 or ISO dashes) to count.
_BODY = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d\d)\s*(?:年\s*(?P<m1>\d{1,2})\s*月\s*(?P<d1>\d{1,2})\s*日|-(?P<m2>\d{1,2})-(?P<d2>\d{1,2})(?!\d))"
    r"(?:\s*(?P<H>\d{1,2})\s*[:：时]\s*(?P<M>\d{1,2}))?"
    r"(?!\s*(?:起|至|到|前|后|以来|之前|之后|开始|截止|为止))"  # an event's date, not the article's
)


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except Exception:  # an unknown tz name must not break an article; UTC is the fallback
        return UTC


def to_utc(value: datetime, tz: str) -> datetime:
    """Naive datetimes are in the source timezone; the result is aware UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=zone(tz))
    return value.astimezone(UTC)


def _build(
    y: str, m: str, d: str, hh: str | None, mm: str | None, ss: str | None, tzs: str | None, tz: str
) -> datetime | None:
    try:
        dt = datetime(int(y), int(m), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
    except ValueError:
        return None
    if tzs:
        tzs = tzs.upper()
        if tzs in ("Z", "UTC", "GMT"):
            return dt.replace(tzinfo=UTC)
        sign = 1 if tzs[0] == "+" else -1
        digits = tzs[1:].replace(":", "")
        try:
            offset = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        except ValueError:
            return None
        return dt.replace(tzinfo=offset).astimezone(UTC)
    return to_utc(dt, tz)


def parse_date(value: object, tz: str) -> datetime | None:
    """A front-matter/feed date value (text, or what YAML made of it) → aware UTC, or None."""
    if isinstance(value, datetime):
        try:
            return to_utc(value, tz)
        except (OverflowError, ValueError):
            return None
    if isinstance(value, date):
        try:
            return to_utc(datetime(value.year, value.month, value.day), tz)
        except (OverflowError, ValueError):  # 0001-01-01 east of UTC: before the first representable instant
            return None
    if not isinstance(value, str):
        return None
    m = _FIELD.match(value)
    if not m:
        return None
    return _build(m["y"], m["m"], m["d"], m["H"], m["M"], m["S"], m["tz"], tz)


def find_body_date(text: str, tz: str, limit: int = 120) -> datetime | None:
    """The first full date (with its year) stated in the opening of a body."""
    m = _BODY.search(text, 0, limit)
    if not m:
        return None
    return _build(m["y"], m["m1"] or m["m2"], m["d1"] or m["d2"], m["H"], m["M"], None, None, tz)

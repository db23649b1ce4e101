"""RSS 0.9x/1.0/2.0, Atom and JSON Feed documents → RawItem values. The only module importing feedparser.

Bytes and the ``Content-Type`` go to feedparser untouched: it weighs the HTTP charset, the XML prolog and
the BOM itself (and reads GB2312 as its superset GB18030), which is more than a decode here could know.
JSON Feed (which feedparser 6 does not read) is JSON, whose encoding is fixed by its RFC.

Entry identity (the item key): the GUID/id, else the normalized link, else a hash of title + date + content.
Two entries with the same identity in one document: the newest (updated, else published) wins, ties go to
the first in document order — deterministic, so a re-poll never flips between them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import feedparser

from ..dedup import canonical_url
from ..errors import NotAFeed
from ..types import RawItem
from .html import absolutize_html

_HAS_ZONE = re.compile(r"(?:Z|[+-]\d\d:?\d\d|\b(?:GMT|UTC|UT|[ECMP][SD]T))\s*$", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A feed document read into items, plus what it says about polling."""

    title: str | None
    link: str | None
    version: str
    items: tuple[RawItem, ...]
    ttl_seconds: float | None = None  # RSS <ttl> (minutes in the document)
    problem: str | None = None  # the parser's complaint when it still read the document (malformed XML …)
    duplicates: int = 0  # entries dropped because another entry had the same identity


def _storable(key: str) -> str:
    """A key the database can store: lone surrogates (valid in a JSON feed's ids) kept visible as escapes."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def entry_key(guid: str | None, link: str | None, title: str, date: str, content: str) -> str:
    """GUID, else normalized link, else a hash of title + date + content."""
    if guid and guid.strip():
        return _storable(f"id:{guid.strip()}")
    if link and link.strip():
        return _storable(f"url:{canonical_url(link.strip())}")
    digest = hashlib.sha256("\x1f".join((title, date, content)).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"hash:{digest}"


def _zone(name: str) -> Any:
    try:
        return ZoneInfo(name)
    except Exception:  # config validated it; a bad name must still not break a feed
        return UTC


def feed_date(text: str | None, parsed: time.struct_time | None, tz: str) -> datetime | None:
    """feedparser reads a naive date as UTC; a date without a zone is in the source's timezone instead."""
    if parsed is None:
        return None
    try:
        dt = datetime(*parsed[:6])
    except (TypeError, ValueError):
        return None
    if text and _HAS_ZONE.search(text.strip()):
        return dt.replace(tzinfo=UTC)
    return dt.replace(tzinfo=_zone(tz)).astimezone(UTC)


def _iso_date(text: Any, tz: str) -> datetime | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_zone(tz))
    return dt.astimezone(UTC)


def _looks_json(data: bytes, content_type: str | None) -> bool:
    ct = (content_type or "").lower()
    if "json" in ct:
        return True
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def parse_feed(
    data: bytes, content_type: str | None, url: str, *, source: str, timezone: str, fetched: datetime
) -> ParsedFeed:
    """A feed document → items; NotAFeed for an error page, HTML, or bytes no parser can read."""
    if _looks_json(data, content_type):
        return _parse_json(data, url, source=source, timezone=timezone, fetched=fetched)
    # No content-location: feedparser would resolve a relative permalink GUID against it, and the identity
    # of every entry would change when the feed moves. Links and bodies are made absolute here instead.
    d = feedparser.parse(data, response_headers={"content-type": content_type or "application/xml"})
    version = str(d.get("version") or "")
    problem = None
    if d.get("bozo"):
        problem = f"{type(d.get('bozo_exception')).__name__}: {d.get('bozo_exception')}"[:300]
    if not version and not d.entries:
        ct = (content_type or "").split(";")[0].strip().lower()
        what = "an HTML page" if ct in ("text/html", "application/xhtml+xml") or b"<html" in data[:2048].lower() \
            else "not a feed"
        raise NotAFeed(f"{what} where a feed was expected ({ct or 'no content type'}){': ' + problem if problem else ''}",
                       source=source, url=url)
    feed = d.get("feed", {})
    base = feed.get("link") or url
    items: list[tuple[datetime, int, RawItem]] = []
    for n, e in enumerate(d.entries):
        items.append(_from_entry(e, n, base, url, source=source, timezone=timezone, fetched=fetched))
    chosen, dropped = _dedupe(items)
    ttl = None
    with_ttl = str(feed.get("ttl") or "").strip()
    if with_ttl.isdigit():
        ttl = float(with_ttl) * 60
    return ParsedFeed(title=feed.get("title"), link=feed.get("link"), version=version, items=chosen, ttl_seconds=ttl,
                      problem=problem, duplicates=dropped)


def _from_entry(
    e: Any, n: int, base: str, url: str, *, source: str, timezone: str, fetched: datetime
) -> tuple[datetime, int, RawItem]:
    link = e.get("link")
    if link:
        link = urljoin(url, link)
    title = e.get("title") or ""
    contents = [c for c in e.get("content", []) if c.get("value")]
    summary = absolutize_html(e.get("summary") or "", url)
    body = absolutize_html(max((c["value"] for c in contents), key=len), url) if contents else summary
    published = feed_date(e.get("published"), e.get("published_parsed"), timezone)
    # dict.get: feedparser's own get() maps a missing `updated` to `published` (with a DeprecationWarning)
    updated = feed_date(dict.get(e, "updated"), dict.get(e, "updated_parsed"), timezone)
    date_text = None
    if published is None and updated is None:
        date_text = e.get("published") or dict.get(e, "updated") or None  # a shape feedparser does not know
    tags = tuple(str(t.get("term") or t.get("label") or "").strip() for t in e.get("tags", []))
    key = entry_key(e.get("id"), link, title, e.get("published") or dict.get(e, "updated") or "", body)
    item = RawItem(
        source=source, key=key, timezone=timezone, url=link, title=title, published=published or updated,
        updated=updated if published is not None else None, date_text=date_text, author=e.get("author") or None,
        content_html=body, summary_html=summary if contents and summary != body else None,
        tags=tuple(t for t in tags if t), mtime=fetched,
    )
    return (updated or published or _EPOCH), n, item


def _dedupe(items: list[tuple[datetime, int, RawItem]]) -> tuple[tuple[RawItem, ...], int]:
    """Keep one entry per key: the newest, ties to the first in document order; document order kept."""
    best: dict[str, tuple[datetime, int, RawItem]] = {}
    for when, n, item in items:
        old = best.get(item.key)
        if old is None or when > old[0]:
            best[item.key] = (when, n, item)
    kept = sorted(best.values(), key=lambda t: t[1])
    return tuple(item for _, _, item in kept), len(items) - len(kept)


def _parse_json(data: bytes, url: str, *, source: str, timezone: str, fetched: datetime) -> ParsedFeed:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAFeed(f"not a JSON Feed: {exc}", source=source, url=url) from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/") \
            or not isinstance(doc.get("items"), list):
        raise NotAFeed("JSON that is not a JSON Feed (no jsonfeed.org version or no items)", source=source, url=url)
    base = doc.get("home_page_url") if isinstance(doc.get("home_page_url"), str) else url
    feed_authors = _json_authors(doc)
    items: list[tuple[datetime, int, RawItem]] = []
    for n, it in enumerate(doc["items"]):
        if not isinstance(it, dict):
            continue
        link = it.get("url") or it.get("external_url")
        link = urljoin(base or url, link) if isinstance(link, str) and link else None
        title: str = it["title"] if isinstance(it.get("title"), str) else ""
        body = it.get("content_html") if isinstance(it.get("content_html"), str) else None
        if body is None and isinstance(it.get("content_text"), str):
            body = "".join(f"<p>{_escape(p)}</p>" for p in it["content_text"].split("\n") if p.strip())
        summary = it.get("summary") if isinstance(it.get("summary"), str) else None
        published = _iso_date(it.get("date_published"), timezone)
        updated = _iso_date(it.get("date_modified"), timezone)
        tags = tuple(str(t).strip() for t in it.get("tags") or [] if str(t).strip())
        guid = it.get("id")
        guid = str(guid) if isinstance(guid, str | int) and not isinstance(guid, bool) else None
        authors = _json_authors(it) or feed_authors
        key = entry_key(guid, link, title, str(it.get("date_published") or ""), body or summary or "")
        item = RawItem(
            source=source, key=key, timezone=timezone, url=link, title=title, published=published or updated,
            updated=updated if published is not None else None, author=authors, content_html=body or summary or "",
            summary_html=summary if body else None, tags=tags, mtime=fetched,
        )
        items.append((updated or published or _EPOCH, n, item))
    chosen, dropped = _dedupe(items)
    return ParsedFeed(title=doc.get("title") if isinstance(doc.get("title"), str) else None,
                      link=base, version="json" + str(doc["version"]).rsplit("/", 1)[-1], items=chosen,
                      duplicates=dropped)


def _json_authors(obj: dict[str, Any]) -> str | None:
    raw = obj.get("authors")
    authors: list[Any] = raw if isinstance(raw, list) else [obj.get("author")]
    names = [a["name"].strip() for a in authors if isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"].strip()]
    return ", ".join(names) or None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

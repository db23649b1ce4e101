"""FeedSpec → Atom / RSS bytes (pure; the only module that imports feedgen).

Output is byte-deterministic for the same input: entries are sorted explicitly (published desc, then
story_id), duplicate story ids are dropped (readers silently keep only one of two entries sharing an id),
and every date in the document comes from the entries — the feed-level ``updated`` / ``lastBuildDate`` is
the newest entry's ``updated`` (the Unix epoch for an empty feed), never the build time.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote, urlsplit

from feedgen.feed import FeedGenerator

from ..errors import RenderError
from ..types import Carrier, FeedSpec, SiteInfo, StoryEntry

FeedFormat = Literal["atom", "rss"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GENERATOR = "syndicator"
STORY_ID_PREFIX = "urn:syndicator:story:"
FEED_ID_PREFIX = "urn:syndicator:feed:"
UNTITLED = "(无标题)"

EXTENSIONS: dict[str, str] = {"atom": ".atom", "rss": ".rss"}
MEDIA_TYPES: dict[str, str] = {"atom": "application/atom+xml", "rss": "application/rss+xml"}

# Characters XML 1.0 does not allow (C0 controls except TAB/LF/CR, lone surrogates, U+FFFE/U+FFFF).
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Characters that may stay as they are in a URI; everything else is percent-encoded (UTF-8).
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"
SAFE_SCHEMES = frozenset({"http", "https"})


def clean_xml_text(text: str | None) -> str:
    """``text`` without the characters XML 1.0 forbids (feedgen/lxml raise on them)."""
    if not text:
        return ""
    return _XML_INVALID.sub("", text)


@functools.lru_cache(maxsize=4096)  # the same links recur in the all feed, tag feeds, pages and digests
def clean_url(url: str | None) -> str:
    """An absolute URL safe to put in a feed: XML-invalid characters dropped, whitespace trimmed,
    non-ASCII and unsafe characters percent-encoded (existing ``%XX`` escapes are kept); "" for any
    scheme other than http(s) (``javascript:``, ``data:``, ``vbscript:`` …)."""
    cleaned = clean_xml_text(url).strip()
    # A reader's browser follows only what we let through: http(s) or a relative link. Browsers drop tabs
    # and newlines inside a URL and trim controls, so "java\tscript:" must be judged as "javascript:".
    probe = re.sub(r"[\t\n\r]", "", cleaned).strip("".join(map(chr, range(33))))
    try:
        scheme = urlsplit(probe).scheme.lower()
    except ValueError:
        return ""
    if scheme and scheme not in SAFE_SCHEMES:
        return ""
    return quote(cleaned, safe=_URL_SAFE)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime without microseconds (naive values are taken as UTC, defensively)."""
    if value.tzinfo is UTC:  # the database's values: no conversion (a busy day's digest sorts 8,000 of them)
        return value.replace(microsecond=0) if value.microsecond else value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _urn_part(text: str) -> str:
    # RFC 2141 NSS characters; anything else (including "/") is percent-encoded.
    return quote(clean_xml_text(text), safe="()+,-.:=@;$_!*'")


def entry_id(story_id: str) -> str:
    """The stable, never-changing id of a story's feed entry: ``urn:syndicator:story:<story_id>``."""
    return STORY_ID_PREFIX + _urn_part(story_id)


def feed_id(path: str) -> str:
    """The stable id of a feed: ``urn:syndicator:feed:all``, ``urn:syndicator:feed:tags:<slug>``."""
    return FEED_ID_PREFIX + _urn_part(path.replace("/", ":"))


def sort_entries(entries: Iterable[StoryEntry]) -> list[StoryEntry]:
    """Newest first (published desc, then story_id asc); later duplicates of a story id are dropped."""
    ordered = sorted(entries, key=lambda e: e.story_id)
    ordered.sort(key=lambda e: as_utc(e.published), reverse=True)
    seen: set[str] = set()
    unique: list[StoryEntry] = []
    for entry in ordered:
        if entry.story_id in seen:
            continue
        seen.add(entry.story_id)
        unique.append(entry)
    return unique


def entry_updated(entry: StoryEntry) -> datetime:
    """An entry's updated date, never earlier than its published date."""
    return max(as_utc(entry.updated), as_utc(entry.published))


def feed_updated(entries: Sequence[StoryEntry]) -> datetime:
    """The feed-level date: the newest entry's ``updated`` (epoch for an empty feed)."""
    return max((entry_updated(e) for e in entries), default=EPOCH)


def feed_url(site: SiteInfo, path: str, fmt: FeedFormat) -> str:
    """The absolute URL of one feed file."""
    return site.base_url + path + EXTENSIONS[fmt]


def feed_anchor(path: str) -> str:
    """The id of a feed's section in index.html (``all`` → ``feed-all``, ``tags/x`` → ``feed-tags-x``)."""
    return "feed-" + re.sub(r"[^A-Za-z0-9_-]+", "-", path).strip("-")


def feed_alternate(site: SiteInfo, spec: FeedSpec) -> str:
    """The HTML page a feed stands for: index.html (its section, for tag feeds)."""
    index = site.base_url + "index.html"
    return index if spec.path == "all" else f"{index}#{feed_anchor(spec.path)}"


def tags_scheme(site: SiteInfo) -> str:
    """The category scheme URI: tag slugs are terms under ``<base_url>tags/``."""
    return site.base_url + "tags/"


def also_in_html(carriers: Sequence[Carrier]) -> str:
    """“同时刊发：<a href=…>重庆频道</a>、…” as one HTML paragraph ("" when there are none)."""
    parts: list[str] = []
    for carrier in carriers:
        label = html.escape(clean_xml_text(carrier.label).strip())
        if not label:
            continue
        link = clean_url(carrier.link) if carrier.link else ""
        parts.append(f'<a href="{html.escape(link)}">{label}</a>' if link else label)
    if not parts:
        return ""
    return "<p>同时刊发：" + "、".join(parts) + "</p>"


def full_content(entry: StoryEntry) -> str:
    """The entry's sanitized HTML plus the “同时刊发” paragraph."""
    body = clean_xml_text(entry.content_html)
    extra = also_in_html(entry.also_in)
    if extra:
        body = f"{body}\n{extra}" if body else extra
    return body


def _add_entry(fg: FeedGenerator, site: SiteInfo, entry: StoryEntry, fmt: FeedFormat) -> None:
    fe = fg.add_entry(order="append")
    fe.id(entry_id(entry.story_id))
    fe.title(clean_xml_text(entry.title).strip() or UNTITLED)
    link = clean_url(entry.link)
    if link:
        fe.link(href=link, rel="alternate", type="text/html")
    fe.published(as_utc(entry.published))
    fe.updated(entry_updated(entry))
    author = clean_xml_text(entry.author).strip()
    summary = clean_xml_text(entry.summary).strip()
    content = full_content(entry)
    categories = [
        {"term": clean_xml_text(tag.slug), "label": clean_xml_text(tag.name), "scheme": tags_scheme(site)}
        for tag in entry.tags
        if clean_xml_text(tag.slug) and clean_xml_text(tag.name)
    ]
    if categories:
        fe.category(categories)
    if fmt == "atom":
        if author:
            fe.author(name=author)
        if summary or not content:
            # an entry without any text gets its title as summary (validators warn otherwise)
            fe.summary(summary or fe.title(), type="text")
        if content or not link:
            fe.content(content or html.escape(fe.title()), type="html")
    else:
        fe.guid(entry_id(entry.story_id), permalink=False)
        if author:
            fe.dc.dc_creator(author)
        # <description> is HTML in RSS: the plain-text summary is escaped once more, on purpose.
        if summary:
            fe.description(html.escape(summary, quote=False))
            if content:
                fe.content(content)
        elif content:
            fe.description(content)


def build_generator(spec: FeedSpec, site: SiteInfo, fmt: FeedFormat) -> FeedGenerator:
    """A filled-in feedgen FeedGenerator for ``spec`` in format ``fmt``."""
    entries = sort_entries(spec.entries)
    title = clean_xml_text(spec.title).strip() or clean_xml_text(site.title).strip() or GENERATOR
    description = (
        clean_xml_text(spec.description).strip() or clean_xml_text(site.description).strip() or title
    )
    updated = feed_updated(entries)
    fg = FeedGenerator()
    if fmt == "rss":
        fg.load_extension("dc", atom=False, rss=True)
    fg.id(feed_id(spec.path))
    fg.title(title)
    fg.subtitle(description)  # also RSS <description>
    fg.language(clean_xml_text(site.language) or "und")
    fg.generator(GENERATOR)
    site_name = clean_xml_text(site.title).strip()
    if fmt == "atom" and site_name:
        fg.author(name=site_name)  # Atom needs an author on the feed or on every entry
    # self first, alternate last: the RSS <channel><link> is the last link() call.
    fg.link(href=feed_url(site, spec.path, fmt), rel="self", type=MEDIA_TYPES[fmt])
    fg.link(href=clean_url(feed_alternate(site, spec)), rel="alternate", type="text/html")
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for entry in entries:
        _add_entry(fg, site, entry, fmt)
    return fg


def render_feed(spec: FeedSpec, site: SiteInfo, fmt: Literal["atom", "rss"]) -> bytes:
    """The Atom or RSS document for ``spec`` (UTF-8, pretty-printed, deterministic)."""
    if fmt not in EXTENSIONS:
        raise RenderError(f"unknown feed format {fmt!r} (use atom or rss)", path=spec.path)
    try:
        fg = build_generator(spec, site, fmt)
        data = fg.atom_str(pretty=True) if fmt == "atom" else fg.rss_str(pretty=True)
    except (ValueError, TypeError) as exc:
        raise RenderError(f"cannot build the {fmt} feed: {exc}", path=spec.path + EXTENSIONS[fmt]) from exc
    if not isinstance(data, bytes):  # pragma: no cover - lxml returns bytes for an encoding
        raise RenderError("feedgen returned text instead of bytes", path=spec.path)
    return data

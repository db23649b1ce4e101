"""index.html, feeds.opml and article pages (pure: values in, UTF-8 bytes out).

Jinja2 templates live in ``syndicator/render/templates/`` (package data) and are rendered with autoescape;
only ``content_html`` — already sanitized by normalize/ — is inserted as is. No build time appears in the
output, so the same input always gives the same bytes and the files are not rewritten needlessly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.utils import format_datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ..errors import RenderError
from ..types import FeedSpec, FeedSummary, SiteInfo, StoryEntry
from .feeds import as_utc, clean_url, clean_xml_text, feed_anchor, feed_url, sort_entries

ALL_FEED = "all"
INDEX_PAGE = "index.html"
OPML_FILE = "feeds.opml"
ARTICLES_DIR = "articles"
_STORY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


@cache
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("syndicator.render", "templates"),
        autoescape=select_autoescape(["html", "opml", "xml"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(template: str, **context: object) -> bytes:
    try:
        return _env().get_template(template).render(**context).encode("utf-8")
    except Exception as exc:  # jinja2 raises many types; name the page in one line
        raise RenderError(f"cannot render: {exc}", path=template) from exc


def site_zone(site: SiteInfo) -> tzinfo:
    """The site's display timezone (UTC when the name is unknown)."""
    try:
        return ZoneInfo(site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local_time(site: SiteInfo, value: datetime) -> str:
    """``2024-05-01 16:00`` in the site's timezone."""
    return as_utc(value).astimezone(site_zone(site)).strftime("%Y-%m-%d %H:%M")


def article_page_path(story_id: str) -> str:
    """The output path of a story's page: ``articles/<story_id>.html``."""
    if not _STORY_ID.match(story_id):
        raise RenderError("story id is not usable in a file name", path=f"{ARTICLES_DIR}/{story_id!r}")
    return f"{ARTICLES_DIR}/{story_id}.html"


def article_page_url(site: SiteInfo, story_id: str) -> str:
    """The absolute URL of a story's page (the entry link when the source has no URL of its own)."""
    return site.base_url + article_page_path(story_id)


@dataclass(frozen=True, slots=True)
class _FeedRow:
    path: str
    title: str
    description: str
    anchor: str
    count: int
    newest: str
    newest_iso: str
    newest_rfc822: str
    atom_url: str
    rss_url: str
    atom_rel: str
    rss_rel: str
    html_url: str


def summarize_feed(spec: FeedSpec | FeedSummary) -> FeedSummary:
    """A feed's count and newest date (a FeedSummary is returned as it is)."""
    if isinstance(spec, FeedSummary):
        return spec
    entries = sort_entries(spec.entries)
    newest = max((as_utc(e.published) for e in entries), default=None)
    return FeedSummary(spec.path, spec.title, spec.description, len(entries), newest, spec.tag)


def _feed_row(site: SiteInfo, feed: FeedSpec | FeedSummary) -> _FeedRow:
    spec = summarize_feed(feed)
    newest = as_utc(spec.newest) if spec.newest is not None else None
    anchor = feed_anchor(spec.path)
    return _FeedRow(
        path=spec.path,
        title=clean_xml_text(spec.title).strip() or spec.path,
        description=clean_xml_text(spec.description).strip(),
        anchor=anchor,
        count=spec.count,
        newest=local_time(site, newest) if newest else "",
        newest_iso=newest.isoformat() if newest else "",
        newest_rfc822=format_datetime(newest) if newest else "",
        atom_url=feed_url(site, spec.path, "atom"),
        rss_url=feed_url(site, spec.path, "rss"),
        atom_rel=spec.path + ".atom",
        rss_rel=spec.path + ".rss",
        html_url=site.base_url + INDEX_PAGE + ("" if spec.path == ALL_FEED else f"#{anchor}"),
    )


def _ordered(feeds: Sequence[FeedSpec | FeedSummary]) -> list[FeedSpec | FeedSummary]:
    """ "all" first, then the others by path; one row per path."""
    seen: dict[str, FeedSpec | FeedSummary] = {}
    for spec in feeds:
        seen.setdefault(spec.path, spec)
    return sorted(seen.values(), key=lambda s: (s.path != ALL_FEED, s.path))


def _clean_site(site: SiteInfo) -> SiteInfo:
    return SiteInfo(
        title=clean_xml_text(site.title).strip() or "syndicator",
        base_url=site.base_url,
        language=clean_xml_text(site.language).strip() or "und",
        timezone=site.timezone,
        description=clean_xml_text(site.description).strip(),
    )


def render_index(site: SiteInfo, feeds: Sequence[FeedSpec | FeedSummary]) -> bytes:
    """index.html: every feed with entry count, newest date, Atom/RSS links and autodiscovery."""
    rows = [_feed_row(site, spec) for spec in _ordered(feeds)]
    return _render(INDEX_PAGE, site=_clean_site(site), feeds=rows, discovery=rows)


def render_opml(site: SiteInfo, feeds: Sequence[FeedSpec | FeedSummary]) -> bytes:
    """feeds.opml (OPML 2.0): one outline per feed; dateModified is the newest entry's date, if any."""
    rows = [_feed_row(site, spec) for spec in _ordered(feeds)]
    newest = max(
        (as_utc(f.newest) for f in map(summarize_feed, feeds) if f.newest is not None),
        default=None,
    )
    return _render(
        OPML_FILE,
        site=_clean_site(site),
        feeds=rows,
        date_modified=format_datetime(newest) if newest else "",
    )


@dataclass(frozen=True, slots=True)
class _Link:
    name: str
    href: str


@dataclass(frozen=True, slots=True)
class _Carrier:
    label: str
    link: str


def render_article_page(site: SiteInfo, entry: StoryEntry) -> bytes:
    """A standalone page for one story: ``articles/<story_id>.html``."""
    own_url = article_page_url(site, entry.story_id)
    published = as_utc(entry.published)
    updated = max(as_utc(entry.updated), published)
    all_feed = _feed_row(site, FeedSpec(ALL_FEED, clean_xml_text(site.title) or "all", "", ()))
    tag_feeds = [
        _feed_row(site, FeedSpec(f"tags/{tag.slug}", clean_xml_text(tag.name), "", ()))
        for tag in entry.tags
        if re.fullmatch(r"[A-Za-z0-9_-]+", tag.slug)
    ]
    tags = [_Link(name=t.title, href=f"../{t.path}.atom") for t in tag_feeds]
    carriers = [
        _Carrier(label=clean_xml_text(c.label).strip(), link=clean_url(c.link) if c.link else "")
        for c in entry.also_in
        if clean_xml_text(c.label).strip()
    ]
    link = clean_url(entry.link)
    return _render(
        "article.html",
        site=_clean_site(site),
        discovery=[all_feed, *tag_feeds],
        entry=StoryEntry(
            story_id=entry.story_id,
            title=clean_xml_text(entry.title).strip() or "(无标题)",
            link=link,
            published=published,
            updated=updated,
            author=clean_xml_text(entry.author).strip() or None,
            summary=entry.summary,
            content_html=entry.content_html,
            tags=entry.tags,
            channel=clean_xml_text(entry.channel).strip() or None,
            also_in=entry.also_in,
        ),
        published=local_time(site, published),
        published_iso=published.isoformat(),
        updated=local_time(site, updated) if updated != published else "",
        updated_iso=updated.isoformat(),
        tags=tags,
        content=Markup(clean_xml_text(entry.content_html)),  # sanitized upstream by normalize/
        carriers=carriers,
        source_link=link if link and link != own_url else "",
    )

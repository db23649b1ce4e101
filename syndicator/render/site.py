"""index.html, feeds.opml and article pages (pure: values in, UTF-8 bytes out).

Jinja2 templates live in ``syndicator/render/templates/`` (package data) and are rendered with autoescape;
only ``content_html`` — already sanitized by normalize/ — is inserted as is. No build time appears in the
output, so the same input always gives the same bytes and the files are not rewritten needlessly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from email.utils import format_datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ..errors import RenderError
from ..types import FeedSpec, SiteInfo, StoryEntry, TagSummary
from .feeds import as_utc, clean_url, clean_xml_text, feed_anchor, feed_url, sort_entries

ALL_FEED = "all"
INDEX_PAGE = "index.html"
OPML_FILE = "feeds.opml"
ARTICLES_DIR = "articles"
TAGS_DIR = "tags"
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
        # the package's templates do not change under a running process (an upgrade restarts it): no stat of
        # the template file before every page (8 against 1 µs a page)
        auto_reload=False,
    )


def _render(template: str, **context: object) -> bytes:
    try:
        return _env().get_template(template).render(**context).encode("utf-8")
    except Exception as exc:  # jinja2 raises many types; name the page in one line
        raise RenderError(f"cannot render: {exc}", path=template) from exc


def render_page(template: str, **context: object) -> bytes:
    """Render one of the package templates (autoescaped) to UTF-8 bytes; ``site`` is cleaned first."""
    site = context.get("site")
    if isinstance(site, SiteInfo):
        context["site"] = _clean_site(site)
    return _render(template, **context)


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
    page: str = ""  # the tag's reading page, relative to the site root ("" when there is none)
    label: str = ""  # the short name shown in the front page's table (the tag name)


def _feed_row(site: SiteInfo, spec: FeedSpec) -> _FeedRow:
    entries = sort_entries(spec.entries)
    newest = max((as_utc(e.published) for e in entries), default=None)
    anchor = feed_anchor(spec.path)
    return _FeedRow(
        path=spec.path,
        title=clean_xml_text(spec.title).strip() or spec.path,
        description=clean_xml_text(spec.description).strip(),
        anchor=anchor,
        count=len(entries),
        newest=local_time(site, newest) if newest else "",
        newest_iso=newest.isoformat() if newest else "",
        newest_rfc822=format_datetime(newest) if newest else "",
        atom_url=feed_url(site, spec.path, "atom"),
        rss_url=feed_url(site, spec.path, "rss"),
        atom_rel=spec.path + ".atom",
        rss_rel=spec.path + ".rss",
        html_url=site.base_url + INDEX_PAGE + ("" if spec.path == ALL_FEED else f"#{anchor}"),
    )


def _ordered(feeds: Sequence[FeedSpec]) -> list[FeedSpec]:
    """ "all" first, then the others by path; one row per path."""
    seen: dict[str, FeedSpec] = {}
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


@dataclass(frozen=True, slots=True)
class DigestLink:
    """A day's digest as the front page lists it."""

    day: str  # YYYY-MM-DD
    count: int


def render_index(
    site: SiteInfo,
    feeds: Sequence[FeedSpec],
    *,
    tags: Sequence[TagSummary] | None = None,
    digests: Sequence[DigestLink] = (),
    stories: int | None = None,
) -> bytes:
    """index.html, the front page: subscribe links with copy-able URLs, every tag with its story count and
    last update (from ``tags`` when given, else from the feeds' entries) and link to its page, the latest
    digests, the number of ``stories`` in all, and autodiscovery of every feed."""
    known = {t.slug: t for t in tags or ()}
    rows = []
    for spec in _ordered(feeds):
        row = _feed_row(site, spec)
        summary = known.get(spec.tag.slug) if spec.tag is not None else None
        if summary is not None:
            newest = as_utc(summary.newest) if summary.newest else None
            row = replace(
                row,
                count=summary.stories,
                newest=local_time(site, newest) if newest else "",
                newest_iso=newest.isoformat() if newest else "",
                page=f"{TAGS_DIR}/{spec.tag.slug}.html" if spec.tag is not None else "",
                label=clean_xml_text(summary.name).strip(),
            )
        elif spec.path == ALL_FEED and stories is not None:
            row = replace(row, count=stories)
        rows.append(row)
    discovery = list(rows)
    digest_feed = None
    if digests:
        digest_feed = _feed_row(site, FeedSpec("digest", f"{_clean_site(site).title} 每日摘要", "", ()))
        discovery.insert(1, digest_feed)
    return _render(
        INDEX_PAGE, site=_clean_site(site), feeds=rows, discovery=discovery, digests=list(digests),
        digest_feed=digest_feed,
        total=stories if stories is not None else next((r.count for r in rows if r.path == ALL_FEED), 0),
    )


def tag_page_path(slug: str) -> str:
    """``tags/<slug>.html``, the reading page of a tag."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", slug):
        raise RenderError("tag slug is not usable in a file name", path=f"{TAGS_DIR}/{slug!r}")
    return f"{TAGS_DIR}/{slug}.html"


def render_tag_page(
    site: SiteInfo, spec: FeedSpec, summary: TagSummary | None = None, *, digest_links: bool = True
) -> bytes:
    """``tags/<slug>.html``: a tag's recent stories (newest first) with its feeds' copy-able URLs, and a
    link to each story's day digest (``digest_links``)."""
    if spec.tag is None:
        raise RenderError("a tag page needs a tag feed", path=spec.path)
    row = _feed_row(site, spec)
    tz = site_zone(site)
    items = [
        {
            "title": clean_xml_text(e.title).strip() or "(无标题)",
            "link": clean_url(e.link),
            "page": f"../{article_page_path(e.story_id)}",
            "own": clean_url(e.link) == article_page_url(site, e.story_id),  # no source URL of its own
            "time": local_time(site, e.published),
            "day": as_utc(e.published).astimezone(tz).date().isoformat(),
            "iso": as_utc(e.published).isoformat(),
            "summary": clean_xml_text(e.summary).strip(),
            "channels": [x for x in [clean_xml_text(e.channel).strip(),
                                     *(clean_xml_text(c.label).strip() for c in e.also_in)] if x],
        }
        for e in sort_entries(spec.entries)
    ]
    return _render(
        "tag.html", site=_clean_site(site), feed=row, discovery=[row],
        name=clean_xml_text(spec.tag.name).strip() or spec.tag.slug,
        total=summary.stories if summary is not None else len(items), items=items, digest_links=digest_links,
    )


def render_opml(site: SiteInfo, feeds: Sequence[FeedSpec]) -> bytes:
    """feeds.opml (OPML 2.0): one outline per feed; dateModified is the newest entry's date, if any."""
    rows = [_feed_row(site, spec) for spec in _ordered(feeds)]
    newest = max(
        (as_utc(e.published) for spec in feeds for e in spec.entries),
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

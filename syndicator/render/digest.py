"""The daily digest (pure): a local day's stories → grouped Digest → HTML page, Markdown, Atom/RSS feed.

Days are local days in ``site.timezone``: a story published at 00:30 +08:00 belongs to that day even though
it is the previous day in UTC. Every story appears once per digest: first the top stories (carried by at
least ``top_min_channels`` channels; most channels first, then newest), then one section per tag (each story
under the first of its tags in section order), then the stories without a shown tag.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedgen.feed import FeedGenerator
from lxml import etree
from markupsafe import Markup

from ..errors import RenderError
from ..types import Digest, DigestOptions, DigestSection, SiteInfo, StoryEntry, Tag
from .feeds import EPOCH, GENERATOR, MEDIA_TYPES, as_utc, clean_url, clean_xml_text, sort_entries
from .site import render_page

DIGEST_DIR = "digest"
DIGEST_FEED = "digest"  # digest.atom / digest.rss
ARCHIVE_PAGE = "digest/index.html"
DIGEST_ID_PREFIX = "urn:syndicator:digest:"
DIGEST_FEED_ID = "urn:syndicator:feed:digest"
TOP_TITLE = "要闻"


def zone(name: str) -> tzinfo:
    """The named IANA timezone (UTC when unknown; the config validates names before this)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def day_bounds(day: date, tz_name: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of a local day as aware UTC datetimes (23 or 25 hours long across a DST change)."""
    tz = zone(tz_name)
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def local_day(value: datetime, tz_name: str) -> date:
    """The local day (``site.timezone``) an aware datetime falls on."""
    return as_utc(value).astimezone(zone(tz_name)).date()


def digest_path(day: date, ext: Literal["html", "md"] = "html") -> str:
    """``digest/YYYY-MM-DD.html`` (or ``.md``)."""
    return f"{DIGEST_DIR}/{day.isoformat()}.{ext}"


def digest_id(day: date) -> str:
    """The stable feed-entry id of a day's digest."""
    return DIGEST_ID_PREFIX + day.isoformat()


def _utc_stamp(value: datetime) -> str:
    """The instant in UTC, to the microsecond: two syncs within one second change different stamps."""
    if value.tzinfo is UTC:  # the database's values: no conversion (this runs over every story)
        return value.isoformat()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def fingerprint(stamps: Iterable[tuple[str, datetime]]) -> str:
    """A hash of a day's stories (id and last change): equal exactly when the day's stories are unchanged."""
    lines = sorted(f"{sid}\t{_utc_stamp(changed)}" for sid, changed in stamps)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def channels(entry: StoryEntry) -> tuple[str, ...]:
    """The distinct channels that carried a story: its own channel first, then the others."""
    labels = [entry.channel or "", *(c.label for c in entry.also_in)]
    return tuple(dict.fromkeys(clean_xml_text(x).strip() for x in labels if clean_xml_text(x).strip()))


def _rank_key(entry: StoryEntry, channel_count: int) -> tuple[int, float, str]:
    return (-max(1, channel_count), -as_utc(entry.published).timestamp(), entry.story_id)


def _tag_order(entries: Sequence[StoryEntry], options: DigestOptions) -> list[Tag]:
    counts: Counter[Tag] = Counter(t for e in entries for t in dict.fromkeys(e.tags))
    wanted = {name: i for i, name in enumerate(options.tag_order)}

    def pinned(tag: Tag) -> int | None:
        hits = [wanted[k] for k in (tag.name, tag.slug) if k in wanted]
        return min(hits) if hits else None

    first = sorted((t for t in counts if pinned(t) is not None), key=lambda t: (pinned(t), t.slug))
    rest = [t for t in counts if pinned(t) is None]
    if options.other_tags == "count":
        rest.sort(key=lambda t: (-counts[t], t.name, t.slug))
    else:
        rest.sort(key=lambda t: (t.name, t.slug))
    return (first + rest)[: options.max_tags]


def build_digest(day: date, entries: Iterable[StoryEntry], options: DigestOptions, updated: datetime) -> Digest:
    """Group a day's stories; each story lands in exactly one section."""
    stories = sort_entries(entries)  # one entry per story id
    # a story of one article has at most one channel: most of a busy day, skipped without counting
    carried = [(e, n) for e in stories if (e.also_in or options.top_min_channels <= 1)
               and (n := len(channels(e))) >= options.top_min_channels]
    top = [e for e, _ in sorted(carried, key=lambda c: _rank_key(*c))][: options.top_stories]
    top_ids = {e.story_id for e in top}
    rest = [e for e in stories if e.story_id not in top_ids]
    order = _tag_order(rest, options)
    position = {t: i for i, t in enumerate(order)}
    groups: dict[int, list[StoryEntry]] = {}
    untagged: list[StoryEntry] = []
    for e in rest:
        spots = [position[t] for t in e.tags if t in position]
        if spots:
            groups.setdefault(min(spots), []).append(e)
        else:
            untagged.append(e)
    sections: list[DigestSection] = []
    if top:
        sections.append(DigestSection(TOP_TITLE, tuple(top), top=True))

    def cut(title: str, members: list[StoryEntry], tag: Tag | None) -> DigestSection:
        # members keep the order of ``stories`` (newest first, then story id): no sort needed
        kept = members[: options.max_per_tag]
        return DigestSection(title, tuple(kept), tag=tag, more=len(members) - len(kept))

    for i, tag in enumerate(order):
        if groups.get(i):
            sections.append(cut(tag.name, groups[i], tag))
    if untagged:
        sections.append(cut(options.untagged, untagged, None))
    newest = max((as_utc(e.updated) for e in stories), default=EPOCH)
    return Digest(day=day, sections=tuple(sections), count=len(stories), updated=max(as_utc(updated), newest))


# -- presentation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestFeedItem:
    """One day's entry of the digest feeds: all they show of a day (its body rendered once, for both formats).

    The feeds hold the latest days; an incremental sync keeps the entries of the days it did not change
    (``reusable_feed_items``) instead of loading and rendering those days again."""

    day: date
    count: int
    updated: datetime  # as_utc: what the entry's <updated> says
    body: str  # the body HTML, XML-clean


def digest_title(site: SiteInfo, digest: Digest | DigestFeedItem) -> str:
    return f"{clean_xml_text(site.title).strip() or GENERATOR} 每日摘要 {digest.day.isoformat()}（{digest.count} 篇）"


def _item(site: SiteInfo, entry: StoryEntry) -> dict[str, object]:
    tz = zone(site.timezone)
    published = as_utc(entry.published)
    labels = channels(entry)
    links = {clean_xml_text(c.label).strip(): clean_url(c.link) for c in entry.also_in if c.link}
    return {
        "id": entry.story_id,
        "title": clean_xml_text(entry.title).strip() or "(无标题)",
        "link": clean_url(entry.link),
        "page": f"{site.base_url}articles/{entry.story_id}.html",
        "time": published.astimezone(tz).strftime("%H:%M"),
        "iso": published.isoformat(),
        "summary": clean_xml_text(entry.summary).strip(),
        "channels": [{"label": label, "link": links.get(label, "")} for label in labels],
        "count": len(labels),
    }


def _anchor(sec: DigestSection) -> str:
    return "top" if sec.top else (f"tag-{sec.tag.slug}" if sec.tag else "untagged")


def digest_sections(site: SiteInfo, digest: Digest) -> list[dict[str, object]]:
    """The sections as the templates show them; the page, its feed entry and its Markdown take the same (make
    them once for all three: on a busy day each costs as much as rendering)."""
    return [
        {
            "title": clean_xml_text(sec.title).strip(),
            "anchor": _anchor(sec),
            "tag_url": f"{site.base_url}tags/{sec.tag.slug}.html" if sec.tag else "",
            "items": [_item(site, e) for e in sec.entries],
            "more": sec.more,
            "top": sec.top,
        }
        for sec in digest.sections
    ]


def digest_body(site: SiteInfo, digest: Digest, sections: list[dict[str, object]] | None = None) -> str:
    """The grouped stories as HTML: the middle of the day's page and its feed entry's content (render it
    once and hand it to both: a busy day's body is most of what they cost)."""
    shown = digest_sections(site, digest) if sections is None else sections
    return render_page("digest_body.html", site=site, sections=shown).decode("utf-8")


def feed_item(site: SiteInfo, digest: Digest, body: str | None = None) -> DigestFeedItem:
    """A day's feed entry; ``body``: its ``digest_body`` when already rendered (for the page)."""
    return DigestFeedItem(digest.day, digest.count, as_utc(digest.updated),
                          clean_xml_text(digest_body(site, digest) if body is None else body))


def render_digest_html(
    site: SiteInfo, digest: Digest, *, previous: date | None = None, following: date | None = None,
    absolute: bool = False, body: str | None = None,
) -> bytes:
    """``digest/YYYY-MM-DD.html``: standalone (inline CSS, no scripts, no external assets), printable.
    ``absolute``: every link is a full URL (for the e-mail, which is read away from the site). ``body``:
    the day's ``digest_body`` when the caller rendered it already."""
    tz = zone(site.timezone)
    here = f"{site.base_url}{DIGEST_DIR}/" if absolute else ""
    return render_page(
        "digest.html",
        toc=[{"title": clean_xml_text(sec.title).strip(), "anchor": _anchor(sec), "count": len(sec.entries) + sec.more}
             for sec in digest.sections],
        site=site,
        title=digest_title(site, digest),
        day=digest.day.isoformat(),
        count=digest.count,
        updated=as_utc(digest.updated).astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        updated_iso=as_utc(digest.updated).isoformat(),
        body=Markup(digest_body(site, digest) if body is None else body),
        previous=f"{here}{previous.isoformat()}.html" if previous else "",
        following=f"{here}{following.isoformat()}.html" if following else "",
        discovery=digest_discovery(site),
        md=f"{here}{digest.day.isoformat()}.md",
        home=f"{site.base_url}index.html" if absolute else "../index.html",
        archive=f"{here}index.html",
    )


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def render_digest_markdown(site: SiteInfo, digest: Digest, sections: list[dict[str, object]] | None = None) -> bytes:
    """``digest/YYYY-MM-DD.md``: the same digest as plain Markdown (also the e-mail's text part)."""
    lines = [f"# {_md(digest_title(site, digest))}", ""]
    for sec in digest_sections(site, digest) if sections is None else sections:
        lines.append(f"## {_md(str(sec['title']))}")
        lines.append("")
        for item in sec["items"]:  # type: ignore[attr-defined]
            line = f"- {item['time']} [{_md(item['title'])}]({item['link']})"
            chans = [c["label"] for c in item["channels"]]
            if chans:
                line += f" · {_md('、'.join(chans))}"
            lines.append(line)
            if item["summary"]:
                lines.append(f"  {_md(item['summary'])}")
        if sec["more"]:
            lines.append(f"- 另有 {sec['more']} 篇：{sec['tag_url'] or site.base_url}")
        lines.append("")
    return ("\n".join(lines).rstrip() + "\n").encode("utf-8")


def digest_discovery(site: SiteInfo) -> list[dict[str, str]]:
    """Autodiscovery rows (title, atom_url, rss_url): the digest feed and the all-stories feed."""
    name = clean_xml_text(site.title).strip() or GENERATOR
    return [
        {"title": f"{name} 每日摘要", "atom_url": f"{site.base_url}{DIGEST_FEED}.atom",
         "rss_url": f"{site.base_url}{DIGEST_FEED}.rss"},
        {"title": name, "atom_url": f"{site.base_url}all.atom", "rss_url": f"{site.base_url}all.rss"},
    ]


def render_digest_feed(site: SiteInfo, digests: Sequence[Digest | DigestFeedItem], fmt: Literal["atom", "rss"]) -> bytes:
    """``digest.atom`` / ``digest.rss``: one entry per day (newest day first), stable id per date; days
    without stories have no entry; the feed's date is the newest entry's ``updated``."""
    items = (feed_item(site, d) if isinstance(d, Digest) else d for d in digests if d.count > 0)
    days = sorted(items, key=lambda d: d.day, reverse=True)
    name = clean_xml_text(site.title).strip() or GENERATOR
    updated = max((as_utc(d.updated) for d in days), default=EPOCH)
    fg = FeedGenerator()
    fg.id(DIGEST_FEED_ID)
    fg.title(f"{name} 每日摘要")
    fg.subtitle(f"{name}：每天的新闻，按标签整理")
    fg.language(clean_xml_text(site.language) or "und")
    fg.generator(GENERATOR)
    if fmt == "atom":
        fg.author(name=name)
    fg.link(href=f"{site.base_url}{DIGEST_FEED}.{fmt}", rel="self", type=MEDIA_TYPES[fmt])
    fg.link(href=site.base_url + ARCHIVE_PAGE, rel="alternate", type="text/html")
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for d in days:
        fe = fg.add_entry(order="append")
        fe.id(digest_id(d.day))
        fe.title(digest_title(site, d))
        fe.link(href=site.base_url + digest_path(d.day), rel="alternate", type="text/html")
        fe.published(day_bounds(d.day, site.timezone)[0])
        fe.updated(as_utc(d.updated))
        body = d.body
        if fmt == "atom":
            fe.summary(f"{d.day.isoformat()} 共 {d.count} 篇", type="text")
            fe.content(body, type="html")
        else:
            fe.guid(digest_id(d.day), permalink=False)
            fe.description(body)
    try:
        data = fg.atom_str(pretty=True) if fmt == "atom" else fg.rss_str(pretty=True)
    except (ValueError, TypeError) as exc:
        raise RenderError(f"cannot build the digest feed: {exc}", path=f"{DIGEST_FEED}.{fmt}") from exc
    return bytes(data)


_ATOM = "{http://www.w3.org/2005/Atom}"


def reusable_feed_items(site: SiteInfo, atom: bytes, wanted: Mapping[date, tuple[int, datetime]]) -> dict[date, DigestFeedItem]:
    """The entries of a ``digest.atom`` written before that are still right: those of the ``wanted`` days
    (day → its recorded story count and ``updated``, for days whose stories did not change since) whose
    title and date say exactly that. Everything else in an entry follows from its day, count and date,
    and the body is the entry's content; an entry that does not match (or a file that does not parse) is
    left out, and the caller renders that day again."""
    try:
        root = etree.fromstring(atom, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True))
    except etree.XMLSyntaxError:
        return {}
    found: dict[date, DigestFeedItem] = {}
    for entry in root.iterfind(f"{_ATOM}entry"):
        ident = entry.findtext(f"{_ATOM}id") or ""
        try:
            day = date.fromisoformat(ident.removeprefix(DIGEST_ID_PREFIX))
        except ValueError:
            continue
        if not ident.startswith(DIGEST_ID_PREFIX) or day not in wanted:
            continue
        count, updated = wanted[day]
        item = DigestFeedItem(day, count, as_utc(updated), entry.findtext(f"{_ATOM}content") or "")
        if (entry.findtext(f"{_ATOM}title") == digest_title(site, item)
                and entry.findtext(f"{_ATOM}updated") == item.updated.isoformat()):
            found[day] = item
    return found


def render_digest_archive(site: SiteInfo, days: Sequence[tuple[date, int]]) -> bytes:
    """``digest/index.html``: every day with a digest, newest first, grouped by month."""
    months: dict[str, list[dict[str, object]]] = {}
    for day, count in sorted(days, reverse=True):
        if count > 0:
            months.setdefault(day.strftime("%Y-%m"), []).append({"day": day.isoformat(), "count": count})
    return render_page(
        "digest_index.html",
        site=site,
        months=[{"month": k, "days": v} for k, v in months.items()],
        discovery=digest_discovery(site),
        feed_atom=f"{site.base_url}{DIGEST_FEED}.atom",
        feed_rss=f"{site.base_url}{DIGEST_FEED}.rss",
    )

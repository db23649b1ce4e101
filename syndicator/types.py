"""Frozen values that flow between the stages (sources → normalize → dedup → storage → render), and the ids and
text forms that more than one stage derives.

No I/O and no third-party imports here: every stage can depend on this module and nothing else of each other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

DateSource = Literal["front_matter", "body", "file_mtime", "feed", "fetched"]


def stable_id(*parts: str, length: int = 16) -> str:
    """A short hex id derived only from the given parts (never from titles, dates or base_url)."""
    # surrogatepass: a lone surrogate (valid in JSON, so in a remote item's id) must not crash the id
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:length]


_WORD = re.compile(r"\w+")


def word_chars(text: str) -> str:
    """The text's letters and digits (``\\w`` but ``_``), in order: whitespace and punctuation dropped.

    Here because two stages make a text's identity of it — the content hash (normalize) and the comparable text
    of the near-duplicate index (dedup) — and must agree on what a letter is.
    """
    # joining the runs of \w is ~30 % faster than deleting the runs of [\W_] with re.sub (same result)
    return "".join(_WORD.findall(text)).replace("_", "")


def article_id(source: str, key: str) -> str:
    """The stable id of an article: its source name and its key inside the source."""
    return stable_id("article", source, key)


@dataclass(frozen=True, slots=True)
class RawItem:
    """One item as a source produced it, before any cleaning.

    Archive sources fill ``data`` (the file's bytes), ``path`` and ``mtime``; network sources fill the
    pre-parsed fields (``title``, ``url``, ``content_html`` …) they got from feedparser or a page.
    """

    source: str
    key: str
    timezone: str = "UTC"
    data: bytes | None = None
    path: str | None = None
    mtime: datetime | None = None
    url: str | None = None
    title: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    date_text: str | None = None
    author: str | None = None
    content_html: str | None = None
    summary_html: str | None = None
    tags: tuple[str, ...] = ()
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class ArticleVersion:
    """An earlier version of an article (e.g. an older stacked front-matter block)."""

    title: str
    published: datetime
    content_html: str
    content_text: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class Article:
    """A normalized article: clean title, aware UTC dates, sanitized body, tags."""

    source: str
    key: str
    id: str
    title: str
    original_title: str | None
    channel: str | None
    published: datetime
    updated: datetime | None
    date_source: DateSource
    author: str | None
    submitter: str | None
    summary: str
    content_html: str
    content_text: str
    link: str | None
    source_path: str | None
    tags: tuple[str, ...]
    content_hash: str
    publisher: str | None = None
    earlier_versions: tuple[ArticleVersion, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tag:
    """A tag name and its ASCII URL slug (stable, unique)."""

    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class Carrier:
    """Another channel or source that carried the same story (shown as “同时刊发”)."""

    label: str
    link: str | None


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """One feed entry: a story, shown through its canonical article."""

    story_id: str
    title: str
    link: str
    published: datetime
    updated: datetime
    author: str | None
    summary: str
    content_html: str
    tags: tuple[Tag, ...]
    channel: str | None = None
    also_in: tuple[Carrier, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """Everything needed to write one feed pair (``<path>.atom`` and ``<path>.rss``)."""

    path: str  # without extension, relative to output dir: "all" or "tags/<slug>"
    title: str
    description: str
    entries: tuple[StoryEntry, ...]
    tag: Tag | None = None


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """Site-wide settings the renderers need."""

    title: str
    base_url: str  # always ends with "/"
    language: str
    timezone: str
    description: str = ""


@dataclass(slots=True)
class SourceReport:
    """What one sync did to one source."""

    name: str
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    unchanged: int = 0
    skipped: int = 0
    withdrawn: int = 0
    errors: list[str] = field(default_factory=list)
    # remote sources (feed, html)
    next_due: datetime | None = None  # when the next poll is due (interval, back-off or Retry-After)
    fetch_error: str | None = None  # the source as a whole failed: recorded as a failed attempt
    disabled: str | None = None  # not polled at all: the source is disabled (410 Gone …) for this reason


@dataclass(slots=True)
class SyncReport:
    """What one sync did overall; ``summary()`` is the line printed at the end."""

    sources: list[SourceReport] = field(default_factory=list)
    feeds_written: int = 0
    seconds: float = 0.0

    def total(self, attr: str) -> int:
        return sum(int(getattr(s, attr)) for s in self.sources)

    @property
    def errors(self) -> int:
        return sum(len(s.errors) for s in self.sources)

    def summary(self) -> str:
        return (
            f"sources={len(self.sources)} new={self.total('new')} updated={self.total('updated')} "
            f"duplicates={self.total('duplicates')} unchanged={self.total('unchanged')} "
            f"skipped={self.total('skipped')} withdrawn={self.total('withdrawn')} errors={self.errors} "
            f"feeds_written={self.feeds_written} seconds={self.seconds:.2f}"
        )


@dataclass(frozen=True, slots=True)
class TagSummary:
    """A tag as the front page lists it: its story count and newest story date."""

    name: str
    slug: str
    stories: int
    newest: datetime | None


@dataclass(frozen=True, slots=True)
class DigestOptions:
    """How a day's stories are grouped and cut (``digest:`` in the config)."""

    tag_order: tuple[str, ...] = ()  # tag names or slugs shown first, in this order
    other_tags: Literal["count", "name"] = "count"
    top_stories: int = 5
    top_min_channels: int = 2  # a top story was carried by at least this many channels
    max_per_tag: int = 20
    max_tags: int = 50
    untagged: str = "其他"


@dataclass(frozen=True, slots=True)
class DigestSection:
    """One group of a digest: the top stories, a tag, or the stories without a (shown) tag."""

    title: str
    entries: tuple[StoryEntry, ...]
    tag: Tag | None = None
    more: int = 0  # stories of this group left out by ``max_per_tag``
    top: bool = False


@dataclass(frozen=True, slots=True)
class Digest:
    """One local day's stories, grouped; every story appears in exactly one section."""

    day: date
    sections: tuple[DigestSection, ...]
    count: int  # stories of the day
    updated: datetime  # changes only when the day's stories change

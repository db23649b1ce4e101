"""Pure dedup decisions: (Article, what is stored) → New | Update | Unchanged | Duplicate-of(story).

Identity rules: within a source the same key is the same article; across sources the same normalized
content hash, or the same canonical URL, is the same story.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .types import Article, stable_id

_TRACKING = re.compile(r"^(utm_[a-z]+|spm|from|share_token|fbclid|gclid|mc_cid|mc_eid|_hsenc|_hsmi)$", re.I)


def canonical_url(url: str | None) -> str | None:
    """Lower-case scheme and host, no fragment, no default port, no tracking parameters."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return url.strip()
    host = parts.hostname or ""
    port = parts.port
    netloc = host.lower()
    if port and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        netloc += f":{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", query, ""))


def story_id_for(article_id: str) -> str:
    """The story id a new story gets from its first article; it never changes afterwards."""
    return stable_id("story", article_id)


@dataclass(frozen=True, slots=True)
class Stored:
    """What storage knows of the article with the same id."""

    content_hash: str
    title: str
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored live article of another key that may tell the same story."""

    article_id: str
    story_id: str
    content_hash: str
    canonical_url: str | None


@dataclass(frozen=True, slots=True)
class New:
    story_id: str


@dataclass(frozen=True, slots=True)
class DuplicateOf:
    story_id: str


@dataclass(frozen=True, slots=True)
class Update:
    pass


@dataclass(frozen=True, slots=True)
class Unchanged:
    pass


Decision = New | DuplicateOf | Update | Unchanged


def decide(article: Article, stored: Stored | None, candidates: list[Candidate]) -> Decision:
    """Decide what an incoming article is, given the stored article of its key and candidate matches."""
    if stored is not None:
        if stored.withdrawn or stored.content_hash != article.content_hash or stored.title != article.title:
            return Update()
        return Unchanged()
    url = canonical_url(article.link)
    for c in sorted(candidates, key=lambda c: c.article_id):
        if c.article_id == article.id:
            continue
        if c.content_hash == article.content_hash or (url is not None and c.canonical_url == url):
            return DuplicateOf(c.story_id)
    return New(story_id_for(article.id))

"""Bounds on what one article may bring in (pure): long titles and bodies are cut, future dates distrusted.

Applied after normalization, before storage, so that a hostile or broken file can neither bloat every feed
that lists it nor pin itself to the top of a feed with a date years ahead. Every change is returned as a
one-line reason for the sync log; the article itself is kept (only a file over ``max_file_bytes`` is
rejected, by the source, before it is read).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

from .config import LimitSettings
from .types import Article, ArticleVersion

TRUNCATED_NOTE = "<p>（正文过长，以下从略）</p>"
_BLOCK_END = re.compile(r"</p>|<br\s*/?>|</li>|</blockquote>", re.IGNORECASE)


def cut_title(title: str, max_chars: int) -> str:
    if len(title) <= max_chars:
        return title
    return title[: max_chars - 1].rstrip() + "…"


def cut_html(markup: str, max_bytes: int) -> str:
    """At most ``max_bytes`` UTF-8 bytes of sanitized HTML, cut after a whole paragraph, plus a note.

    Cutting at a closing tag keeps the markup well formed (the sanitizer's output is flat: paragraphs and
    images); when even the first paragraph is too long its text is cut instead.
    """
    data = markup.encode("utf-8")
    if len(data) <= max_bytes:
        return markup
    budget = max(0, max_bytes - len(TRUNCATED_NOTE.encode("utf-8")))
    head = data[:budget].decode("utf-8", "ignore")
    ends = list(_BLOCK_END.finditer(head))
    if ends:
        return head[: ends[-1].end()] + TRUNCATED_NOTE
    return TRUNCATED_NOTE


def cut_text(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    head = data[:max_bytes].decode("utf-8", "ignore")
    cut = head.rfind("\n\n")
    return (head[:cut] if cut > 0 else head).rstrip() + "…"


def _version(v: ArticleVersion, limits: LimitSettings) -> ArticleVersion:
    return replace(
        v, title=cut_title(v.title, limits.max_title_chars),
        content_html=cut_html(v.content_html, limits.max_body_bytes),
        content_text=cut_text(v.content_text, limits.max_body_bytes),
    )


def bound(article: Article, limits: LimitSettings, *, now: datetime,
          fallback: datetime | None = None) -> tuple[Article, list[str]]:
    """The article within ``limits``, and why it was changed (empty when it was not).

    A ``published`` date further ahead of ``now`` than ``limits.future_tolerance`` is replaced by
    ``fallback`` (the file's mtime: stable across re-syncs) or ``now``, whichever is earlier; such an
    ``updated`` date is dropped. The content hash stays that of the full text, so dedup is unaffected.
    """
    notes: list[str] = []
    changes: dict[str, object] = {}
    title = cut_title(article.title, limits.max_title_chars)
    if title != article.title:
        changes["title"] = title
        notes.append(f"title cut to {limits.max_title_chars} characters (was {len(article.title)})")
    size = len(article.content_html.encode("utf-8"))
    if size > limits.max_body_bytes:
        changes["content_html"] = cut_html(article.content_html, limits.max_body_bytes)
        changes["content_text"] = cut_text(article.content_text, limits.max_body_bytes)
        notes.append(f"body cut to {limits.max_body_bytes} bytes (was {size})")
    if any(len(v.content_html.encode("utf-8")) > limits.max_body_bytes or len(v.title) > limits.max_title_chars
           for v in article.earlier_versions):
        changes["earlier_versions"] = tuple(_version(v, limits) for v in article.earlier_versions)
        notes.append("earlier versions cut to the same limits")
    latest = now + timedelta(seconds=limits.future_tolerance_seconds)
    if article.published > latest:
        when = min(fallback, now) if fallback is not None else now
        changes["published"] = when
        changes["date_source"] = "file_mtime" if fallback is not None and fallback <= now else "fetched"
        notes.append(f"date {article.published:%Y-%m-%d %H:%M} UTC is in the future: using {when:%Y-%m-%d %H:%M}")
    if article.updated is not None and article.updated > latest:
        changes["updated"] = None
        notes.append(f"updated date {article.updated:%Y-%m-%d %H:%M} UTC is in the future: ignored")
    if not changes:
        return article, notes
    return replace(article, **changes), notes  # type: ignore[arg-type]

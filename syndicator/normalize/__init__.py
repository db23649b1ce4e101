"""The pure normalization stage: ``RawItem`` → ``Article``.

``normalize_item`` raises ``ParseError`` when there is truly no article (binary, undecodable, no title
and no body) and nothing else, for any input. ``inspect_item`` does the same work and also returns the
problem codes ``syndicator lint`` prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config import NormalizeSettings, TagSettings
from ..errors import ParseError
from ..types import Article, ArticleVersion, DateSource, RawItem, article_id
from .body import Body, clean_lines, split_more
from .dates import find_body_date, parse_date
from .frontmatter import Block, split_blocks
from .rules import CompiledRules, compile_rules
from .tags import build_tags, slugify, split_tags
from .text import (
    Undecodable,
    clean_chars,
    clean_inline,
    content_hash,
    decode,
    html_to_lines,
    normalize_newlines,
)
from .title import strip_title

__all__ = ["inspect_item", "normalize_item", "slugify"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SENTENCE_END = "。！？!?"
_CLOSERS = "”’」』）)\"'"
_TITLE_MAX = 300
_CJK_JOIN = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef”’」』])\n\n")
_HEAD_MARGIN = 64  # characters of the text beyond twice the summary's length, flattened for it
_STEM = re.compile(r"\.(?:md|markdown|txt|html?)$", re.IGNORECASE)


def normalize_item(raw: RawItem, rules: NormalizeSettings, tags: TagSettings) -> Article:
    """One raw item → one clean Article; ParseError when there is no article in it."""
    article, _problems = _normalize(raw, rules, tags)
    return article


def inspect_item(
    raw: RawItem, rules: NormalizeSettings, tags: TagSettings
) -> tuple[Article | None, list[str]]:
    """Like ``normalize_item``, plus the problem codes; a rejected item gives (None, ["rejected:<reason>"])."""
    try:
        article, problems = _normalize(raw, rules, tags)
    except ParseError as exc:
        return None, [f"rejected:{exc.reason}"]
    return article, problems


# ---------------------------------------------------------------- internals


@dataclass(slots=True)
class _Version:
    title: str
    original_title: str | None
    channel: str | None
    published: datetime
    updated: datetime | None
    date_source: DateSource
    author: str | None
    submitter: str | None
    publisher: str | None
    body: Body
    tags: list[str]


def _fail(raw: RawItem, reason: str) -> ParseError:
    return ParseError(reason, file=raw.path or raw.url or raw.key, source=raw.source)


def _normalize(
    raw: RawItem, settings: NormalizeSettings, tag_settings: TagSettings
) -> tuple[Article, list[str]]:
    try:
        return _normalize_unsafe(raw, settings, tag_settings)
    except ParseError:
        raise
    except Exception as exc:  # the contract: ParseError or an Article, for any input
        # tests assert that no input ever reaches this line ("internal error" never shows up)
        raise _fail(raw, f"internal error: {type(exc).__name__}: {exc}") from None


def _normalize_unsafe(
    raw: RawItem, settings: NormalizeSettings, tag_settings: TagSettings
) -> tuple[Article, list[str]]:
    rules = compile_rules(settings)
    problems: list[str] = []
    if raw.data is not None:
        try:
            text, encoding = decode(raw.data)
        except Undecodable as exc:
            raise _fail(raw, str(exc)) from None
        if encoding:
            problems.append(f"non_utf8:{encoding}")
        text = clean_chars(normalize_newlines(text))
        if not text.strip():
            raise _fail(raw, "empty file, not an article")
        blocks = split_blocks(text)
        if len(blocks) > 1:
            problems.append("stacked_front_matter")
        versions = [
            _from_block(raw, b, rules, problems if n == len(blocks) - 1 else []) for n, b in enumerate(blocks)
        ]
    else:
        versions = [_from_network(raw, rules, problems)]
    current = versions[-1]
    if not current.title and not current.body.paragraphs:
        raise _fail(raw, "no title and no body, not an article")
    if not current.title:
        current.title = _fallback_title(raw, current.body)
        problems.append("no_title")
    if not current.body.paragraphs:
        problems.append("empty_body")
    problems.extend(current.body.problems)

    content_text = current.body.text()
    tag_names = build_tags(current.tags, current.channel, current.title, content_text, tag_settings)
    earlier: list[ArticleVersion] = []
    for v in versions[:-1]:
        if not v.title and not v.body.paragraphs:
            continue
        ev = ArticleVersion(
            title=v.title or current.title,
            published=v.published,
            content_html=v.body.html(),
            content_text=v.body.text(),
            content_hash=content_hash(v.body.text() or v.title),
        )
        if earlier and (earlier[-1].content_hash, earlier[-1].title, earlier[-1].published) == (
            ev.content_hash,
            ev.title,
            ev.published,
        ):
            continue
        earlier.append(ev)
    article = Article(
        source=raw.source,
        key=raw.key,
        id=article_id(raw.source, raw.key),
        title=current.title,
        original_title=current.original_title,
        channel=current.channel,
        published=current.published,
        updated=current.updated,
        date_source=current.date_source,
        author=current.author,
        submitter=current.submitter,
        summary=summarize(content_text, rules.summary_chars),
        content_html=current.body.html(),
        content_text=content_text,
        link=raw.url,
        source_path=raw.path,
        tags=tag_names,
        content_hash=content_hash(content_text or current.title),
        publisher=current.publisher,
        earlier_versions=tuple(earlier),
        warnings=tuple(problems),
    )
    return article, problems


def _from_block(raw: RawItem, block: Block, rules: CompiledRules, problems: list[str]) -> _Version:
    problems.extend(block.problems)
    meta = block.meta
    teaser, main = split_more(block.body)
    title_text = _text(meta.get("title"))
    if not meta or "title" not in meta:
        # no front matter: the first line may be the title (a short line that is not a sentence)
        first = next((i for i, line in enumerate(main) if clean_inline(line)), None)
        if first is not None and not title_text:
            cand = clean_inline(main[first])
            if len(cand) <= 80 and "<" not in cand and cand[-1:] not in "。！？.!?，,":
                title_text = cand
                main = main[first + 1 :]
    title, channel, unknown = strip_title(title_text, rules)
    # a channel suffix marks a site (ifeng) whose first lines are text: no lead bylines there
    body = clean_lines(main, rules, teaser=teaser, lead_bylines=channel is None)
    if unknown:
        problems.append("unknown_title_suffix")
    author, submitter, publisher = _people(_text(meta.get("author")), body.author, rules)
    published, date_source, updated = _dates(raw, meta, body, rules, problems)
    tags = split_tags(meta.get("tags")) + split_tags(meta.get("categories"))
    return _Version(
        title=title,
        original_title=_original_title(body.original_title, title),
        channel=channel,
        published=published,
        updated=updated,
        date_source=date_source,
        author=author,
        submitter=submitter,
        publisher=publisher,
        body=body,
        tags=tags,
    )


def _from_network(raw: RawItem, rules: CompiledRules, problems: list[str]) -> _Version:
    markup = clean_chars(raw.content_html or raw.summary_html or "")
    teaser_html, main_html = "", markup
    parts = re.split(r"<!--\s*more\s*-->", markup, maxsplit=1, flags=re.IGNORECASE)
    if len(parts) == 2 and clean_inline(re.sub(r"<[^>]*>", "", parts[1])):
        teaser_html, main_html = parts
    body = clean_lines(
        html_to_lines(main_html), rules, teaser=html_to_lines(teaser_html) if teaser_html else None
    )
    title, channel, unknown = strip_title(clean_inline(clean_chars(raw.title or "")), rules)
    if unknown:
        problems.append("unknown_title_suffix")
    if raw.channel:
        channel = clean_inline(raw.channel) or channel
    author, submitter, publisher = _people(clean_inline(raw.author or ""), body.author, rules)
    published: datetime | None = None
    date_source: DateSource = "feed"
    if raw.published is not None:
        published = parse_date(raw.published, raw.timezone)
    if published is None and raw.date_text:
        published = parse_date(clean_inline(raw.date_text), raw.timezone)
    if published is None:
        date_source = "fetched"
        published = parse_date(raw.mtime, "UTC") if raw.mtime is not None else None
        problems.append("no_date:fetched")
    updated = parse_date(raw.updated, raw.timezone) if raw.updated is not None else None
    return _Version(
        title=title,
        original_title=_original_title(body.original_title, title),
        channel=channel,
        published=published or _EPOCH,
        updated=updated,
        date_source=date_source,
        author=author,
        submitter=submitter,
        publisher=publisher,
        body=body,
        tags=[t for tag in raw.tags for t in split_tags(tag)],
    )


def _text(value: Any) -> str:
    """A front-matter scalar as clean one-line text ('' for None, mappings and lists)."""
    if value is None or isinstance(value, dict | list | tuple | set | bytes):
        return ""
    return clean_inline(clean_chars(str(value)))


def _original_title(found: str | None, title: str) -> str | None:
    if not found:
        return None
    found = found[:_TITLE_MAX]
    return found


def _people(
    fm_author: str, body_author: str | None, rules: CompiledRules
) -> tuple[str | None, str | None, str | None]:
    """(author, submitter, publisher) from the front-matter author and the body's byline/editor."""
    author = body_author
    submitter = publisher = None
    if fm_author and fm_author.lower() not in ("none", "null", "nil", "~"):
        if rules.publishers is not None and rules.publishers.search(fm_author):
            publisher = fm_author
        else:
            submitter = fm_author
            if author is None and not (rules.submitters is not None and rules.submitters.search(fm_author)):
                author = fm_author
    return author, submitter, publisher


def _dates(
    raw: RawItem, meta: dict[str, Any], body: Body, rules: CompiledRules, problems: list[str]
) -> tuple[datetime, DateSource, datetime | None]:
    tz = raw.timezone
    value = meta.get("date")
    shown = _text(value)
    known_junk = bool(shown) and rules.junk_dates is not None and rules.junk_dates.search(shown) is not None
    published = None if known_junk else parse_date(value, tz)  # known page text is never read as a date
    updated = parse_date(meta.get("updated"), tz) if meta.get("updated") is not None else None
    if published is not None:
        return published, "front_matter", updated
    if shown and not known_junk:
        problems.append("junk_date")
    found = find_body_date(body.text(), tz)
    if found is not None:
        problems.append("no_date:body")
        return found, "body", updated
    if raw.mtime is not None:
        mt = parse_date(raw.mtime, "UTC")
        if mt is not None:
            problems.append("no_date:file_mtime")
            return mt, "file_mtime", updated
    problems.append("no_date:none")
    return _EPOCH, "file_mtime", updated


def _fallback_title(raw: RawItem, body: Body) -> str:
    if raw.path:
        stem = _STEM.sub("", raw.path.rsplit("/", 1)[-1])
        stem = clean_inline(stem)
        if stem:
            return stem[:_TITLE_MAX]
    texts = body.texts
    if texts:
        return summarize(texts[0], 40)
    return clean_inline(raw.key)[:_TITLE_MAX] or "untitled"


def _flat(text: str) -> str:
    """The text as one line: paragraphs joined (without a space after CJK), spaces collapsed, stripped."""
    return clean_inline(_CJK_JOIN.sub("", text).replace("\n\n", " "))


def summarize(text: str, limit: int) -> str:
    """The opening of the text, at most ``limit`` characters, cut at a sentence end when one fits."""
    # only the opening is flattened: every step looks at two characters at most and only drops or merges
    # whitespace, so a head of the text flattens to the start of the whole text's flat form (a 2,000-character
    # post flattened whole was 7 % of normalizing it; tests/normalize/test_properties.py compares both)
    head = 2 * limit + _HEAD_MARGIN
    flat = _flat(text[:head])
    if len(text) > head and len(flat) <= limit + _HEAD_MARGIN:  # mostly whitespace: the whole text after all
        flat = _flat(text)
    return _opening(flat, limit)


def _opening(flat: str, limit: int) -> str:
    """``summarize`` of a text already flattened (``_flat``)."""
    if len(flat) <= limit:
        return flat
    window = flat[:limit]
    cut = max(window.rfind(c) for c in _SENTENCE_END)
    if cut > 0:
        end = cut + 1
        while end < len(window) and window[end] in _CLOSERS:
            end += 1
        return window[:end].strip()
    return window[: limit - 1].rstrip() + "…"

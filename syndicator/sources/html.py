"""HTML news pages → RawItem values, with CSS selectors from config. The only module importing beautifulsoup4.

A listing page gives the items (``selectors: item, title, link, date, summary``); when ``selectors.content`` is
set, each article page gives the body (minus ``selectors.remove``). Parsing is pure (bytes in, values out):
the fetching, politeness and "already stored" decisions live in the poller.

Bytes go to beautifulsoup4 with the charset of the ``Content-Type`` (GB2312/GBK read as their superset
GB18030); without one it weighs the ``<meta charset>`` and the bytes itself. Relative links are made absolute
against the page URL (and its ``<base href>``) so stored articles link to the real pages.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag
from bs4.dammit import EncodingDetector
from bs4.exceptions import FeatureNotFound

from ..config import Selectors
from ..dedup import canonical_url
from ..errors import NotAFeed, ParseError
from ..types import RawItem

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030"}
_URL_ATTRS = (("a", "href"), ("img", "src"), ("source", "src"), ("video", "src"), ("audio", "src"),
              ("video", "poster"), ("iframe", "src"))


@dataclass(frozen=True, slots=True)
class Listing:
    """What a listing page gave: its items, and how many elements matched ``item`` but had no title."""

    items: tuple[RawItem, ...]
    skipped: tuple[str, ...] = ()  # one reason per element that was not an item


def charset_of(content_type: str | None) -> str | None:
    """The declared charset, mapped to the superset browsers really use (GB2312 → GB18030)."""
    m = _CHARSET.search(content_type or "")
    if not m:
        return None
    name = m.group(1).strip().lower()
    return _SUPERSETS.get(name, name)


def soup_of(data: bytes, content_type: str | None) -> BeautifulSoup:
    """Parse with lxml; an unknown declared charset falls back to detection instead of failing.

    A charset declared only in ``<meta>`` is mapped to its superset too: lxml, told "gb2312", silently drops
    everything after the first GBK-only character (镕, 喆 … are common in names).
    """
    charset = charset_of(content_type)
    if charset is None:
        declared = EncodingDetector.find_declared_encoding(data[:4096], is_html=True)
        charset = _SUPERSETS.get(declared.lower(), None) if declared else None
    try:
        if charset:
            "".encode(charset)  # LookupError for a charset Python does not know
        return BeautifulSoup(data, "lxml", from_encoding=charset)
    except LookupError:
        return BeautifulSoup(data, "lxml")
    except FeatureNotFound as exc:  # pragma: no cover - lxml is a dependency
        raise RuntimeError("lxml is not installed") from exc


def _base(soup: BeautifulSoup, url: str) -> str:
    base = soup.find("base", href=True)
    if isinstance(base, Tag):
        return urljoin(url, str(base["href"]))
    return url


def _text(el: Tag | None) -> str:
    return re.sub(r"\s+", " ", el.get_text(" ", strip=True)).strip() if el is not None else ""


def _one(scope: Tag, selector: str | None) -> Tag | None:
    if not selector:
        return None
    found = scope.select_one(selector)
    return found if isinstance(found, Tag) else None


def _link(el: Tag | None) -> str | None:
    if el is None:
        return None
    if el.has_attr("href"):
        return str(el["href"]).strip() or None
    a = el.find("a", href=True)
    return str(a["href"]).strip() or None if isinstance(a, Tag) else None


def _date_text(el: Tag | None) -> str | None:
    """A ``<time datetime>`` (or ``content``/``title``) attribute beats the visible text, which may be relative."""
    if el is None:
        return None
    for attr in ("datetime", "content", "title"):
        if el.has_attr(attr) and str(el[attr]).strip():
            return str(el[attr]).strip()
    inner = el.find("time", attrs={"datetime": True})
    if isinstance(inner, Tag) and str(inner["datetime"]).strip():
        return str(inner["datetime"]).strip()
    return _text(el) or None


def absolutize(el: Tag, base: str) -> None:
    """Make every link and media URL inside ``el`` absolute (in place)."""
    for name, attr in _URL_ATTRS:
        for node in el.find_all(name):
            if isinstance(node, Tag) and node.has_attr(attr) and not str(node[attr]).startswith("#"):
                node[attr] = urljoin(base, str(node[attr]).strip())


_ABSOLUTE = r"(?![a-z][a-z0-9+.-]*:|//|#)"
_RELATIVE = re.compile(rf"""\b(?:href|src|poster)\s*=\s*(?:["']{_ABSOLUTE}|(?!["']){_ABSOLUTE})""", re.IGNORECASE)


def absolutize_html(markup: str, base: str) -> str:
    """A fragment with every relative link and media URL made absolute (untouched when there is none)."""
    if not markup or not _RELATIVE.search(markup):
        return markup
    frag = BeautifulSoup(f"<div>{markup}</div>", "lxml").div
    if not isinstance(frag, Tag):  # pragma: no cover - lxml always wraps a fragment
        return markup
    absolutize(frag, base)
    return _inner_html(frag)


def _inner_html(el: Tag) -> str:
    return "".join(str(c) for c in el.contents).strip()


def parse_listing(
    data: bytes, content_type: str | None, url: str, selectors: Selectors, *, source: str, timezone: str,
    fetched: datetime,
) -> Listing:
    """A listing page → one RawItem per ``item`` element that has a title; document order kept, keys unique."""
    soup = soup_of(data, content_type)
    base = _base(soup, url)
    elements = [el for el in soup.select(selectors.item) if isinstance(el, Tag)]
    if not elements:
        raise NotAFeed(f"selector item={selectors.item!r} matched nothing on the listing page", source=source, url=url)
    items: list[RawItem] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for n, el in enumerate(elements, start=1):
        title_el = el if selectors.title == ":scope" else _one(el, selectors.title)
        title = _text(title_el)
        if not title:
            skipped.append(f"item {n}: title={selectors.title!r} matched nothing")
            continue
        href = _link(el if selectors.link == ":scope" else _one(el, selectors.link))
        link = urljoin(base, href) if href else None
        summary_el = _one(el, selectors.summary)
        summary = None
        if summary_el is not None:
            absolutize(summary_el, base)
            summary = _inner_html(summary_el) or None
        date_text = _date_text(_one(el, selectors.date))
        key = item_key(link, title, date_text or "")
        if key in seen:  # the same article linked twice on one page (a teaser and a headline)
            continue
        seen.add(key)
        items.append(RawItem(
            source=source, key=key, timezone=timezone, url=link, title=title, date_text=date_text,
            content_html=summary, mtime=fetched,
        ))
    return Listing(tuple(items), tuple(skipped))


def item_key(link: str | None, title: str, date_text: str) -> str:
    """The normalized link (same shape as a feed entry without GUID), else a hash of title + date."""
    if link:
        return f"url:{canonical_url(link)}"
    return "hash:" + hashlib.sha256(f"{title}\x1f{date_text}".encode()).hexdigest()[:32]


def parse_article(
    data: bytes, content_type: str | None, url: str, content: str, remove: list[str] | tuple[str, ...], *,
    source: str,
) -> str:
    """An article page → the HTML of its body (``content`` minus every ``remove`` match), links absolute."""
    soup = soup_of(data, content_type)
    base = _base(soup, url)
    body = _one(soup, content)
    if body is None:
        raise ParseError(f"content selector {content!r} matched nothing", file=url, source=source)
    for selector in remove:
        for junk in body.select(selector):
            junk.decompose()
    for junk in body.find_all(["script", "style", "noscript"]):
        junk.decompose()
    absolutize(body, base)
    return _inner_html(body)

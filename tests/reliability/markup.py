"""Checks that a feed or page holds no executable markup (an allowlist, like the sanitizer's)."""

from __future__ import annotations

from urllib.parse import urlsplit

from bs4 import BeautifulSoup
from lxml import etree

# what an entry's HTML may hold (the sanitizer's allowlist)
CONTENT_TAGS = {"p", "img", "br", "a", "strong", "em", "b", "i", "blockquote", "ul", "ol", "li"}
# what our own page templates add around it
PAGE_TAGS = CONTENT_TAGS | {"html", "head", "body", "meta", "title", "link", "style", "header", "article", "h1",
                            "h2", "div", "time", "span", "table", "thead", "tbody", "tr", "td", "th", "footer",
                            "main", "nav", "section", "code", "small"}
# the digest feed's entry is our digest_body.html template around sanitized story summaries
DIGEST_TAGS = CONTENT_TAGS | {"section", "h2", "span", "time"}
URL_ATTRS = {"href", "src", "action", "formaction", "poster", "background", "cite", "xlink:href", "data"}
SAFE_SCHEMES = {"http", "https", ""}


def html_problems(markup: str, allowed: set[str], *, template_style: bool = False) -> list[str]:
    problems = []
    soup = BeautifulSoup(markup, "html.parser")
    for el in soup.find_all(True):
        if el.name not in allowed:
            problems.append(f"element <{el.name}>")
        if el.name == "style" and not template_style:
            problems.append("style element")
        for attr, value in el.attrs.items():
            values = value if isinstance(value, list) else [value]
            if attr.lower().startswith("on"):
                problems.append(f"event handler {attr}")
            if attr.lower() in ("srcset", "style", "formaction"):
                problems.append(f"attribute {attr}")
            if attr.lower() in URL_ATTRS:
                for v in values:
                    scheme = urlsplit(str(v).strip()).scheme.lower()
                    if scheme not in SAFE_SCHEMES:
                        problems.append(f"{attr}={v!r}")
    return problems


HTML_FIELDS = {"content", "summary", "description", "encoded", "subtitle"}


def feed_problems(data: bytes) -> list[str]:
    """Every URL of a feed is http(s); every HTML field, unescaped once, passes the content allowlist.

    Titles and other text fields are plain text (escaped once by XML): they cannot hold markup.
    """
    root = etree.fromstring(data)
    allowed = DIGEST_TAGS if b"urn:syndicator:digest" in data else CONTENT_TAGS
    problems = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        local = etree.QName(el).localname
        for attr in ("href", "url", "uri", "src"):
            if attr in el.attrib and urlsplit(el.attrib[attr]).scheme.lower() not in SAFE_SCHEMES:
                problems.append(f"{local} {attr}={el.attrib[attr]!r}")
        text = (el.text or "").strip()
        if local in ("link", "guid", "comments") and text and urlsplit(text).scheme.lower() not in SAFE_SCHEMES | {"urn"}:
            problems.append(f"{local} {text!r}")
        if local in HTML_FIELDS and text and el.get("type", "html") in ("html", "xhtml"):
            problems += [f"{local}: {p}" for p in html_problems(text, allowed)]
    return problems


def page_problems(data: bytes) -> list[str]:
    return html_problems(data.decode("utf-8"), PAGE_TAGS, template_style=True)

"""HTML output: nh3 allowlist for markup, plain text for titles."""

from __future__ import annotations

import html

import nh3

from .text import Image

ALLOWED_TAGS = frozenset({"p", "img", "br", "a", "strong", "em", "b", "i", "blockquote", "ul", "ol", "li"})
ALLOWED_ATTRIBUTES = {"img": {"src", "alt", "width", "height"}, "a": {"href", "title"}}
URL_SCHEMES = frozenset({"http", "https"})


def sanitize(markup: str) -> str:
    """Allowlisted HTML only: no scripts, no event handlers, only http(s) URLs."""
    return nh3.clean(
        markup,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text, quote=False)}</p>"


def image(img: Image) -> str:
    src = img.src
    if src.startswith("//"):
        src = "https:" + src
    attrs = f' src="{html.escape(src)}"'
    if img.alt:
        attrs += f' alt="{html.escape(img.alt)}"'
    if img.width is not None:
        attrs += f' width="{img.width}"'
    if img.height is not None:
        attrs += f' height="{img.height}"'
    return f"<p><img{attrs}></p>"

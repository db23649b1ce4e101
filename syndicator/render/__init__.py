"""Rendering: feeds (feedgen), the site pages (Jinja2) and the only render-side I/O (atomic writes).

Everything but ``write`` is pure: values in, deterministic bytes out.

The names below are loaded on first use: importing ``render.write`` (a no-op sync does, for its recovery
marker) must not pull in feedgen, lxml and Jinja2.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .feeds import render_feed
    from .site import article_page_path, article_page_url, render_article_page, render_index, render_opml
    from .write import prune, write_if_changed

_WHERE = {
    "article_page_path": "site",
    "article_page_url": "site",
    "prune": "write",
    "render_article_page": "site",
    "render_feed": "feeds",
    "render_index": "site",
    "render_opml": "site",
    "write_if_changed": "write",
}
__all__ = [
    "article_page_path",
    "article_page_url",
    "prune",
    "render_article_page",
    "render_feed",
    "render_index",
    "render_opml",
    "write_if_changed",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)

"""Rendering: feeds (feedgen), the site pages (Jinja2) and the only render-side I/O (atomic writes).

Everything but ``write`` is pure: values in, deterministic bytes out.
"""

from __future__ import annotations

from .feeds import render_feed
from .site import article_page_path, article_page_url, render_article_page, render_index, render_opml
from .write import prune, write_if_changed

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

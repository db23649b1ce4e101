"""Database → feed specs → render → files. Renders only what a sync changed (all of it on `render`).

The render functions are pure; this module is the edge that reads the repository and writes files.
Every file is written atomically and only when its bytes change, so a no-op sync leaves every mtime alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .config import Settings
from .render.feeds import render_feed
from .render.site import article_page_path, render_article_page, render_index, render_opml, summarize_feed
from .render.write import BatchWriter, prune
from .storage.repo import Repository
from .types import FeedSpec, FeedSummary, SiteInfo, StoryEntry, Tag

if TYPE_CHECKING:
    from .sync import Changes

log = logging.getLogger(__name__)
FORMATS: tuple[Literal["atom", "rss"], ...] = ("atom", "rss")


def site_info(settings: Settings) -> SiteInfo:
    s = settings.site
    return SiteInfo(title=s.title, base_url=s.base_url, language=s.language, timezone=s.timezone,
                    description=s.description)


def feed_specs(settings: Settings, repo: Repository) -> list[FeedSpec]:
    """The "all" feed and one feed per tag, each with its newest entries."""
    site = site_info(settings)
    limit = settings.output.max_entries
    specs = [FeedSpec(path="all", title=site.title, description=site.description or f"{site.title}：全部",
                      entries=tuple(repo.feed_entries(None, limit, site.base_url)))]
    for t in repo.tags():
        specs.append(
            FeedSpec(path=f"tags/{t.slug}", title=f"{t.name} · {site.title}", description=f"标签「{t.name}」的新闻",
                     entries=tuple(repo.feed_entries(t.slug, limit, site.base_url)), tag=Tag(t.name, t.slug))
        )
    return specs


TAG_CHUNK = 100  # tag feeds whose entries are loaded at once: bounds memory on archives with many tags


def _tag_spec(site: SiteInfo, name: str, slug: str, entries: Sequence[StoryEntry]) -> FeedSpec:
    return FeedSpec(path=f"tags/{slug}", title=f"{name} · {site.title}", description=f"标签「{name}」的新闻",
                    entries=tuple(entries), tag=Tag(name, slug))


def publish(settings: Settings, repo: Repository, changes: Changes | None = None) -> int:
    """Write the outputs a set of changes touched (everything when ``changes`` is None); returns files written.

    Only the feeds of changed tags are loaded and rendered; index.html and feeds.opml are built from every
    tag's count and newest date (one query), not from their entries. Files go through one BatchWriter:
    thousands of article pages cost two filesystem syncs, not two fsyncs each.
    """
    out: Path = settings.output.dir
    out.mkdir(parents=True, exist_ok=True)
    if changes is not None and not changes and (out / "index.html").exists():
        return 0
    if changes is not None and not (out / "index.html").exists():
        changes = None  # a fresh output folder gets everything
    site = site_info(settings)
    limit = settings.output.max_entries
    tags = repo.tags()
    with BatchWriter(out) as writer:
        all_spec = FeedSpec(path="all", title=site.title, description=site.description or f"{site.title}：全部",
                            entries=tuple(repo.feed_entries(None, limit, site.base_url)))
        for fmt in FORMATS:
            writer.write(f"all.{fmt}", render_feed(all_spec, site, fmt))
        wanted = [t for t in tags if changes is None or t.slug in changes.tags]
        for start in range(0, len(wanted), TAG_CHUNK):
            chunk = wanted[start : start + TAG_CHUNK]
            entries = repo.feed_entries_many([t.slug for t in chunk], limit, site.base_url)
            for t in chunk:
                spec = _tag_spec(site, t.name, t.slug, entries.get(t.slug, ()))
                for fmt in FORMATS:
                    writer.write(f"{spec.path}.{fmt}", render_feed(spec, site, fmt))
        summaries = [summarize_feed(all_spec)] + [
            FeedSummary(path=f"tags/{t.slug}", title=f"{t.name} · {site.title}", description=f"标签「{t.name}」的新闻",
                        count=min(t.stories, limit), newest=t.newest, tag=Tag(t.name, t.slug))
            for t in tags
        ]
        writer.write("index.html", render_index(site, summaries))
        writer.write("feeds.opml", render_opml(site, summaries))
        # article pages: the link of entries whose source gives no URL of its own
        ids = repo.all_story_ids() if changes is None else sorted(changes.stories)
        live: set[str] = set()
        for start in range(0, len(ids), 500):
            for entry in repo.entries_by_ids(ids[start : start + 500], site.base_url):
                live.add(entry.story_id)
                writer.write(article_page_path(entry.story_id), render_article_page(site, entry))
        writer.commit()  # before pruning: prune removes stray temporary files
        written = writer.written
    feed_files = {f"{t.slug}.{fmt}" for t in tags for fmt in FORMATS}
    for stale in prune(out, feed_files, "tags"):
        log.info("removed %s (tag has no stories)", stale)
    if changes is None:
        keep = {article_page_path(i).removeprefix("articles/") for i in live}
        for stale in prune(out, keep, "articles"):
            log.info("removed %s (story withdrawn)", stale)
    else:
        for gone in set(ids) - live:
            page = out / article_page_path(gone)
            if page.exists():
                page.unlink()
                log.info("removed %s (story withdrawn)", article_page_path(gone))
    return written

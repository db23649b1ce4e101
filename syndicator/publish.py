"""Database → feed specs → render → files. Renders only what a sync changed (all of it on `render`).

The render functions are pure; this module is the edge that reads the repository and writes files.
Every file is written atomically and only when its bytes change, so a no-op sync leaves every mtime alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings
from .render.feeds import render_feed
from .render.site import (
    DigestLink,
    article_page_path,
    render_article_page,
    render_index,
    render_opml,
    render_tag_page,
    tag_page_path,
)
from .render.write import prune, write_if_changed
from .storage.repo import Repository
from .types import FeedSpec, SiteInfo, Tag, TagSummary

if TYPE_CHECKING:
    from .sync import Changes

log = logging.getLogger(__name__)


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


def publish(settings: Settings, repo: Repository, changes: Changes | None = None) -> int:
    """Write the outputs a set of changes touched (everything when ``changes`` is None); returns files written."""
    out: Path = settings.output.dir
    out.mkdir(parents=True, exist_ok=True)
    if changes is not None and not changes and (out / "index.html").exists():
        return 0
    if changes is not None and not (out / "index.html").exists():
        changes = None  # a fresh output folder gets everything
    site = site_info(settings)
    specs = feed_specs(settings, repo)
    written = 0
    feed_files: set[str] = set()
    for spec in specs:
        for fmt in ("atom", "rss"):
            rel = f"{spec.path}.{fmt}"
            if spec.path.startswith("tags/"):
                feed_files.add(rel.removeprefix("tags/"))
            if changes is None or spec.path == "all" or (spec.tag is not None and spec.tag.slug in changes.tags):
                written += write_if_changed(out, rel, render_feed(spec, site, fmt))
    latest: list[DigestLink] = []
    if settings.digest.enabled:
        from .digest import refresh_digests  # digest imports this module

        digest_written, latest = refresh_digests(settings, repo, full=changes is None)
        written += digest_written
    written += _front_pages(settings, repo, specs, latest, None if changes is None else changes.tags)
    feed_files |= {tag_page_path(spec.tag.slug).removeprefix("tags/") for spec in specs if spec.tag is not None}
    written += write_if_changed(out, "feeds.opml", render_opml(site, specs))
    for stale in prune(out, feed_files, "tags"):
        log.info("removed %s (tag has no stories)", stale)
    # article pages: the link of entries whose source gives no URL of its own
    if changes is None:
        ids = repo.all_story_ids()
        keep = {article_page_path(i).removeprefix("articles/") for i in ids}
        for stale in prune(out, keep, "articles"):
            log.info("removed %s (story withdrawn)", stale)
    else:
        ids = sorted(changes.stories)
        live = set()
        for chunk in range(0, len(ids), 500):
            for entry in repo.entries_by_ids(ids[chunk : chunk + 500], site.base_url):
                live.add(entry.story_id)
                written += write_if_changed(out, article_page_path(entry.story_id), render_article_page(site, entry))
        for gone in set(ids) - live:
            page = out / article_page_path(gone)
            if page.exists():
                page.unlink()
                log.info("removed %s (story withdrawn)", article_page_path(gone))
        return written
    for chunk in range(0, len(ids), 500):
        for entry in repo.entries_by_ids(ids[chunk : chunk + 500], site.base_url):
            written += write_if_changed(out, article_page_path(entry.story_id), render_article_page(site, entry))
    return written


def _front_pages(settings: Settings, repo: Repository, specs: list[FeedSpec], latest: list[DigestLink],
                 tags: set[str] | None) -> int:
    """index.html (tags with counts, subscribe links, latest digests) and the tag pages (``tags`` only, or
    all when None)."""
    site = site_info(settings)
    summaries = {t.slug: TagSummary(t.name, t.slug, t.stories, t.newest) for t in repo.tags()}
    out: Path = settings.output.dir
    written = 0
    written += write_if_changed(out, "index.html", render_index(site, specs, tags=list(summaries.values()),
                                                               digests=latest, stories=repo.story_count()))
    for spec in specs:
        if spec.tag is not None and (tags is None or spec.tag.slug in tags
                                     or not (out / tag_page_path(spec.tag.slug)).exists()):
            written += write_if_changed(out, tag_page_path(spec.tag.slug),
                                        render_tag_page(site, spec, summaries.get(spec.tag.slug),
                                                        digest_links=settings.digest.enabled))
    return written


def write_front_page(settings: Settings, repo: Repository, latest: list[DigestLink]) -> int:
    """Rewrite index.html and the tag pages (used after a digest run); returns files written."""
    settings.output.dir.mkdir(parents=True, exist_ok=True)
    return _front_pages(settings, repo, feed_specs(settings, repo), latest, None)

"""Database → feed specs → render → files. Renders only what a sync changed (all of it on `render`).

The render functions are pure; this module is the edge that reads the repository and writes files.
Every file is written atomically and only when its bytes change, so a no-op sync leaves every mtime alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

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
from .render.write import BatchWriter, attach_store, attached_store, prune, remove, write_if_changed
from .storage.repo import Repository, TagInfo
from .types import FeedSpec, SiteInfo, StoryEntry, Tag, TagSummary

if TYPE_CHECKING:
    from .sync import Changes

log = logging.getLogger(__name__)
TAG_CHUNK = 100  # tag feeds whose entries are loaded with one query


def site_info(settings: Settings) -> SiteInfo:
    s = settings.site
    return SiteInfo(title=s.title, base_url=s.base_url, language=s.language, timezone=s.timezone,
                    description=s.description)


def feed_specs(settings: Settings, repo: Repository) -> list[FeedSpec]:
    """The "all" feed and one feed per tag, each with its newest entries."""
    site = site_info(settings)
    specs = [all_spec(settings, repo)]
    tags = repo.tags()
    for start in range(0, len(tags), TAG_CHUNK):  # one ranked query per chunk of tags, not three per tag
        chunk = tags[start : start + TAG_CHUNK]
        entries = repo.feed_entries_many([t.slug for t in chunk], settings.output.max_entries, site.base_url)
        specs.extend(_tag_spec(settings, repo, t, entries.get(t.slug, ())) for t in chunk)
    return specs


def all_spec(settings: Settings, repo: Repository) -> FeedSpec:
    """The feed of every story."""
    site = site_info(settings)
    return FeedSpec(path="all", title=site.title, description=site.description or f"{site.title}：全部",
                    entries=tuple(repo.feed_entries(None, settings.output.max_entries, site.base_url)))


def _tag_spec(settings: Settings, repo: Repository, t: TagInfo,
              entries: Iterable[StoryEntry] | None = None) -> FeedSpec:
    """One tag's feed; ``entries`` when the caller loaded them with other tags' (feed_specs)."""
    site = site_info(settings)
    if entries is None:
        entries = repo.feed_entries(t.slug, settings.output.max_entries, site.base_url)
    return FeedSpec(path=f"tags/{t.slug}", title=f"{t.name} · {site.title}", description=f"标签「{t.name}」的新闻",
                    entries=tuple(entries), tag=Tag(t.name, t.slug))


def publish(settings: Settings, repo: Repository, changes: Changes | None = None) -> int:
    """Write the outputs a set of changes touched (everything when ``changes`` is None); returns files written."""
    out: Path = settings.output.dir
    attach_output_store(settings, repo)
    out.mkdir(parents=True, exist_ok=True)
    if changes is not None and not changes and _outputs_exist(out):
        return 0
    if changes is not None and not _outputs_exist(out):
        changes = None  # a fresh output folder gets everything
    started = time.time()  # files written after this by a concurrent writer are never pruned
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
    for stale in prune(out, feed_files, "tags", keep_newer_than=started):
        log.info("removed %s (tag has no stories)", stale)
    # article pages: the link of entries whose source gives no URL of its own
    if changes is None:
        ids = repo.all_story_ids()
        keep = {article_page_path(i).removeprefix("articles/") for i in ids}
        for stale in prune(out, keep, "articles", keep_newer_than=started):
            log.info("removed %s (story withdrawn)", stale)
    else:
        ids = sorted(changes.stories)
        live = set()
        for chunk in range(0, len(ids), 500):
            for entry in repo.entries_by_ids(ids[chunk : chunk + 500], site.base_url):
                live.add(entry.story_id)
                written += write_if_changed(out, article_page_path(entry.story_id), render_article_page(site, entry))
        for gone in set(ids) - live:
            if remove(out, article_page_path(gone)):
                log.info("removed %s (story withdrawn)", article_page_path(gone))
        return written
    with BatchWriter(out) as writer:  # thousands of pages: two filesystem syncs, not two fsyncs each
        for chunk in range(0, len(ids), 500):
            for entry in repo.entries_by_ids(ids[chunk : chunk + 500], site.base_url):
                writer.write(article_page_path(entry.story_id), render_article_page(site, entry))
    return written + writer.written


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


# -- scale-out: outputs in the database, and rendering one claimed output at a time ------------------


def attach_output_store(settings: Settings, repo: Repository) -> None:
    """With PostgreSQL every output is stored in the database too, so web nodes on any host can serve it."""
    from .storage.outputs import DbOutputStore, stores_outputs

    if stores_outputs(repo.engine):
        attached = attached_store(settings.output.dir)
        if attached is None or getattr(attached[0], "engine", None) is not repo.engine:
            attach_store(settings.output.dir, DbOutputStore(repo.engine), files=settings.output.files)


def _outputs_exist(out: Path) -> bool:
    """Whether outputs were published before (else a sync publishes everything): in the folder and the store."""
    attached = attached_store(out)
    if attached is None:
        return (out / "index.html").exists()
    store, files = attached
    return _stored(store, "index.html") and (not files or (out / "index.html").exists())


def _stored(store: object, relpath: str) -> bool:
    head = getattr(store, "head", None)
    return head is None or head(relpath) is not None


FEED_ALL, SITE = "feed:all", "site"
FORMATS: tuple[Literal["atom", "rss"], ...] = ("atom", "rss")


def render_keys(stories: set[str], tags: set[str]) -> list[str]:
    """The render-lease keys a change touches: every changed story's page, its tags' feeds, all, the site."""
    if not stories and not tags:
        return []
    return sorted({FEED_ALL, SITE} | {f"feed:tags/{t}" for t in tags} | {f"page:{i}" for i in stories})


def tag_spec(settings: Settings, repo: Repository, slug: str) -> FeedSpec | None:
    """The feed of one tag, or None when the tag has no live story (its files go)."""
    for t in repo.tags():
        if t.slug == slug:
            return _tag_spec(settings, repo, t)
    return None


def publish_keys(settings: Settings, repo: Repository, keys: Iterable[str]) -> int:
    """Render exactly the outputs named by claimed render-lease keys (see ``render_keys``); returns files changed.

    A worker holding the lease of a key is the only one writing its files, so two workers never interleave
    an older and a newer copy of the same output. Unlike ``publish`` nothing else is touched (no pruning of
    other outputs): a tag that lost its last story removes its own feeds here.
    """
    out: Path = settings.output.dir
    attach_output_store(settings, repo)
    out.mkdir(parents=True, exist_ok=True)
    site = site_info(settings)
    written = 0
    pages: list[str] = []
    for key in sorted(set(keys)):
        if key == FEED_ALL:
            spec = all_spec(settings, repo)
            for fmt in FORMATS:
                written += write_if_changed(out, f"all.{fmt}", render_feed(spec, site, fmt))
        elif key == SITE:  # index.html, feeds.opml and the digests (their days' stories may have changed)
            specs = feed_specs(settings, repo)
            latest: list[DigestLink] = []
            if settings.digest.enabled:
                from .digest import refresh_digests  # digest imports this module

                digest_written, latest = refresh_digests(settings, repo, full=False)
                written += digest_written
            written += _front_pages(settings, repo, specs, latest, set())
            written += write_if_changed(out, "feeds.opml", render_opml(site, specs))
        elif key.startswith("feed:tags/"):
            slug = key.removeprefix("feed:tags/")
            tag = tag_spec(settings, repo, slug)
            for rel in (f"tags/{slug}.atom", f"tags/{slug}.rss", tag_page_path(slug)):
                if tag is None:
                    if remove(out, rel):
                        log.info("removed %s (tag has no stories)", rel)
                elif rel.endswith(".html"):
                    summary = next((TagSummary(t.name, t.slug, t.stories, t.newest) for t in repo.tags()
                                    if t.slug == slug), None)
                    written += write_if_changed(out, rel, render_tag_page(site, tag, summary,
                                                                          digest_links=settings.digest.enabled))
                else:
                    kind: Literal["atom", "rss"] = "atom" if rel.endswith(".atom") else "rss"
                    written += write_if_changed(out, rel, render_feed(tag, site, kind))
        elif key.startswith("page:"):
            pages.append(key.removeprefix("page:"))
        else:
            log.warning("render: unknown output key %r ignored", key)
    for chunk in range(0, len(pages), 500):
        ids = pages[chunk : chunk + 500]
        live = set()
        for entry in repo.entries_by_ids(ids, site.base_url):
            live.add(entry.story_id)
            written += write_if_changed(out, article_page_path(entry.story_id), render_article_page(site, entry))
        for gone in set(ids) - live:
            if remove(out, article_page_path(gone)):
                log.info("removed %s (story withdrawn)", article_page_path(gone))
    return written

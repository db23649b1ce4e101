"""Database → feed specs → render → files. Renders only what a sync changed (all of it on `render`).

The render functions are pure; this module is the edge that reads the repository and writes files.
Every file is written atomically and only when its bytes change, so a no-op sync leaves every mtime alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import forked
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
from .render.write import attach_store, attached_store, batched, prune, remove, write_if_changed
from .rendered import RENDERED_DIR, published_files, render_settings
from .storage.repo import Repository, TagInfo
from .types import FeedSpec, SiteInfo, StoryEntry, Tag, TagSummary

if TYPE_CHECKING:
    from .sync import Changes

log = logging.getLogger(__name__)
Stage = Callable[[str], None]  # what a long render is at, for a progress bar (sync.Rendering)
TAG_CHUNK = 100  # tag feeds whose entries are loaded with one query
PAGE_CHUNK = 500  # story pages loaded with one query (and, in a full render, claimed by one process at a time)


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


def _light_spec(settings: Settings, t: TagInfo) -> FeedSpec:
    """A tag's feed without its entries: enough for the front page and OPML rows (counts and dates come
    from the tag summaries)."""
    site = site_info(settings)
    return FeedSpec(path=f"tags/{t.slug}", title=f"{t.name} · {site.title}", description=f"标签「{t.name}」的新闻",
                    entries=(), tag=Tag(t.name, t.slug))


def _tag_spec(settings: Settings, repo: Repository, t: TagInfo,
              entries: Iterable[StoryEntry] | None = None) -> FeedSpec:
    """One tag's feed; ``entries`` when the caller loaded them with other tags' (feed_specs)."""
    if entries is None:
        entries = repo.feed_entries(t.slug, settings.output.max_entries, settings.site.base_url)
    return replace(_light_spec(settings, t), entries=tuple(entries))


def _tag_outputs(settings: Settings, repo: Repository, tags: list[TagInfo], *, feeds: set[str] | None,
                 pages: set[str] | None, progress: Stage | None = None) -> tuple[int, list[FeedSpec]]:
    """Write the feeds of the tags in ``feeds`` and the pages of the tags in ``pages`` (all of either when
    None; a missing page is always written); returns (files written, every tag's spec without entries).

    Entries are loaded only for the tags written, ``TAG_CHUNK`` tags per query, and dropped chunk by chunk:
    memory stays flat however many tags there are, and an incremental sync reads only the changed tags.
    """
    out: Path = settings.output.dir
    site = site_info(settings)
    written = 0
    light = [_light_spec(settings, t) for t in tags]
    todo: list[tuple[TagInfo, bool, bool]] = []  # (tag, its feeds, its page)
    for t in tags:
        feed = feeds is None or t.slug in feeds
        page = pages is None or t.slug in pages or not (out / tag_page_path(t.slug)).exists()
        if feed or page:
            todo.append((t, feed, page))
    for start in range(0, len(todo), TAG_CHUNK):  # one ranked query per chunk of tags, not three per tag
        chunk = todo[start : start + TAG_CHUNK]
        entries = repo.feed_entries_many([t.slug for t, _, _ in chunk], settings.output.max_entries, site.base_url)
        for t, feed, page in chunk:
            spec = _tag_spec(settings, repo, t, entries.get(t.slug, ()))
            if feed:
                for fmt in FORMATS:
                    written += write_if_changed(out, f"{spec.path}.{fmt}", render_feed(spec, site, fmt))
            if page:
                written += write_if_changed(out, tag_page_path(t.slug),
                                            render_tag_page(site, spec, TagSummary(t.name, t.slug, t.stories, t.newest),
                                                            digest_links=settings.digest.enabled))
        if progress is not None:
            progress(f"tags {start + len(chunk):,}/{len(todo):,}")
    return written, light


def _index(settings: Settings, repo: Repository, tags: list[TagInfo], specs: list[FeedSpec],
           latest: list[DigestLink]) -> int:
    """index.html: the feeds (``specs``: "all" with its entries, the tags' without), tags with counts,
    subscribe links, the latest digests."""
    summaries = [TagSummary(t.name, t.slug, t.stories, t.newest) for t in tags]
    return write_if_changed(settings.output.dir, "index.html",
                            render_index(site_info(settings), specs, tags=summaries, digests=latest,
                                         stories=repo.story_count()))


def publish(settings: Settings, repo: Repository, changes: Changes | None = None, *,
            alongside: Callable[[], None] | None = None, progress: Stage | None = None) -> int:
    """Write the outputs a set of changes touched (everything when ``changes`` is None); returns files written.

    Everything, too, when the outputs were rendered with other settings (``render_settings``): a changed
    ``site.base_url`` or title must not stay in the files of every story that did not change.

    ``alongside``: other work of the command that the render does not depend on (a first sync's near-duplicate
    index). A full render's forked copy does it before its story pages, while this process renders feeds, tag
    pages and digests, and the two share the pages left (so neither idles); without a copy it runs here first.
    Its failure is a warning: the work is redone by the next command.

    ``progress`` is told the stage the render is at (tags, digests, story pages: done of how many), from this
    process only.
    """
    out: Path = settings.output.dir
    attach_output_store(settings, repo)
    out.mkdir(parents=True, exist_ok=True)
    front, mark = published_files(settings)
    published = _output_exists(out, front)  # outputs were published before (else everything is written)
    current = published and _output_exists(out, mark)
    if changes is not None and not current:
        if published:
            log.info("the outputs were rendered with other settings (site, output, digest) or another version: "
                     "rendering everything")
        changes = None  # a fresh output folder gets everything
    # the page of every story (most of the files of a full render) in a forked copy, on the second core, when it
    # can be forked (a single-threaded command) and the files are the only copy (no output store to share)
    copy = changes is None and forked.available() and attached_store(out) is None
    if not copy:
        _beside(alongside)
    if changes is not None and not changes:  # nothing changed, and the outputs are current
        return 0
    if changes is None:
        started = time.time()  # files written after this by a concurrent writer are never pruned
        pages = None
        if copy:
            ids = repo.all_story_ids()
            chunks = forked.Claims(-(-len(ids) // PAGE_CHUNK))  # both processes take chunks until none is left

            def article_pages() -> int:
                repo.after_fork()
                _beside(alongside)
                return _full_article_pages(settings, repo, started, ids=ids, claims=chunks)

            pages = forked.start(article_pages, "rendering the article pages")
        try:
            with batched(out):  # thousands of files: two filesystem syncs per 2,000, not two fsyncs each
                written = _publish(settings, repo, None, started=started, article_pages=pages is None,
                                   progress=progress)
                if pages is not None:  # done with its own part: help with the story pages the copy has not taken
                    written += _claimed_pages(settings, repo, ids, chunks, progress)
        except BaseException:
            if pages is not None:
                pages.abandon()
            raise
        if pages is not None:
            written += pages.result()
        # recorded last: a full render that did not finish is done again by the next sync
        write_if_changed(out, mark, render_settings(settings))
        prune(out, {mark}, RENDERED_DIR)
        return written
    return _publish(settings, repo, changes, progress=progress)


def _beside(work: Callable[[], None] | None) -> None:
    """Run ``publish``'s ``alongside`` work; its failure must not fail the render."""
    if work is None:
        return
    try:
        work()
    except Exception as exc:  # whatever it was, the outputs are still to be written
        log.warning("the work beside the render failed (%s: %s); the next sync does it again",
                    type(exc).__name__, exc)


def _publish(settings: Settings, repo: Repository, changes: Changes | None, *, started: float | None = None,
             article_pages: bool = True, progress: Stage | None = None) -> int:
    """``publish`` below its full-render set-up; ``article_pages=False`` leaves the story pages to the caller."""
    out: Path = settings.output.dir
    if started is None:
        started = time.time()  # files written after this by a concurrent writer are never pruned
    site = site_info(settings)
    tags = repo.tags()
    everything = all_spec(settings, repo)
    written = sum(write_if_changed(out, f"all.{fmt}", render_feed(everything, site, fmt)) for fmt in FORMATS)
    wanted = None if changes is None else changes.tags
    tag_written, light = _tag_outputs(settings, repo, tags, feeds=wanted, pages=wanted, progress=progress)
    written += tag_written
    latest: list[DigestLink] = []
    if settings.digest.enabled:
        from .digest import Touched, refresh_digests  # digest imports this module

        touched = None if changes is None else Touched(frozenset(changes.stories), frozenset(changes.moved_from))
        digest_written, latest = refresh_digests(settings, repo, full=changes is None, touched=touched,
                                                 progress=progress)
        written += digest_written
    elif changes is not None:
        from .digest import Touched, forget_days

        forget_days(settings, repo, Touched(frozenset(changes.stories), frozenset(changes.moved_from)))
    # the front page and OPML need no tag's entries: counts and dates come from the tag summaries, and the
    # newest story of any feed is the newest of "all"
    specs = [everything, *light]
    written += _index(settings, repo, tags, specs, latest)
    written += write_if_changed(out, "feeds.opml", render_opml(site, specs))
    # a tag loses its files only when a change took its last story: an incremental sync that left every
    # touched tag with stories does not list the folder (thousands of files at 100,000 stories)
    if changes is None or not changes.tags <= {t.slug for t in tags}:
        feed_files = {f"{t.slug}.{fmt}" for t in tags for fmt in FORMATS} | {
            tag_page_path(t.slug).removeprefix("tags/") for t in tags}
        for stale in prune(out, feed_files, "tags", keep_newer_than=started):
            log.info("removed %s (tag has no stories)", stale)
    # article pages: the link of entries whose source gives no URL of its own
    if changes is None:
        return written + (_full_article_pages(settings, repo, started, progress=progress) if article_pages else 0)
    return written + _article_pages(settings, repo, sorted(changes.stories), remove_gone=True, progress=progress)


def _full_article_pages(settings: Settings, repo: Repository, started: float, *, ids: list[str] | None = None,
                        claims: forked.Claims | None = None, progress: Stage | None = None) -> int:
    """Every story's page, and the pages of stories no longer there pruned (a full render).

    With ``claims``, only the chunks of ``ids`` this process claims: the forked copy and its parent share them.
    """
    out: Path = settings.output.dir
    if ids is None:
        ids = repo.all_story_ids()
    keep = {article_page_path(i).removeprefix("articles/") for i in ids}
    for stale in prune(out, keep, "articles", keep_newer_than=started):
        log.info("removed %s (story withdrawn)", stale)
    with batched(out):  # joins the caller's batch; a batch of its own in a forked copy
        if claims is None:
            return _article_pages(settings, repo, ids, progress=progress)
        return _claimed_pages(settings, repo, ids, claims, progress)


def _claimed_pages(settings: Settings, repo: Repository, ids: list[str], claims: forked.Claims,
                   progress: Stage | None = None) -> int:
    """The story pages of every chunk of ``ids`` this process can still claim; ``progress`` counts the pages of
    every chunk claimed so far, by either process."""
    written = 0
    while True:
        if progress is not None and ids:  # also when none is left: the other process writes its last chunks
            progress(f"story pages {min(claims.taken() * PAGE_CHUNK, len(ids)):,}/{len(ids):,}")
        if (chunk := claims.next()) is None:
            return written
        written += _article_pages(settings, repo, ids[chunk * PAGE_CHUNK : (chunk + 1) * PAGE_CHUNK])


def _article_pages(settings: Settings, repo: Repository, ids: list[str], *, remove_gone: bool = False,
                   progress: Stage | None = None) -> int:
    """The pages of these stories; with ``remove_gone`` the page of a story that has no entry any more goes."""
    out: Path = settings.output.dir
    site = site_info(settings)
    written = 0
    live = set()
    for chunk in range(0, len(ids), PAGE_CHUNK):
        for entry in repo.entries_by_ids(ids[chunk : chunk + PAGE_CHUNK], site.base_url):
            live.add(entry.story_id)
            written += write_if_changed(out, article_page_path(entry.story_id), render_article_page(site, entry))
        if progress is not None:
            progress(f"story pages {min(chunk + PAGE_CHUNK, len(ids)):,}/{len(ids):,}")
    if remove_gone:
        for gone in set(ids) - live:
            if remove(out, article_page_path(gone)):
                log.info("removed %s (story withdrawn)", article_page_path(gone))
    return written


def write_front_page(settings: Settings, repo: Repository, latest: list[DigestLink]) -> int:
    """Rewrite index.html (its latest digests) after a digest run, and any missing tag page; returns files
    written. The other tag pages stay: their links to each story's day do not depend on the digests made."""
    settings.output.dir.mkdir(parents=True, exist_ok=True)
    tags = repo.tags()
    written, light = _tag_outputs(settings, repo, tags, feeds=set(), pages=set())
    return written + _index(settings, repo, tags, [all_spec(settings, repo), *light], latest)


# -- scale-out: outputs in the database, and rendering one claimed output at a time ------------------


def attach_output_store(settings: Settings, repo: Repository) -> None:
    """With PostgreSQL every output is stored in the database too, so web nodes on any host can serve it."""
    if repo.engine.dialect.name != "postgresql":  # = stores_outputs(), without importing PostgreSQL's dialect
        return
    from .storage.outputs import DbOutputStore, stores_outputs

    if stores_outputs(repo.engine):
        attached = attached_store(settings.output.dir)
        if attached is None or getattr(attached[0], "engine", None) is not repo.engine:
            attach_store(settings.output.dir, DbOutputStore(repo.engine), files=settings.output.files)


def _output_exists(out: Path, relpath: str) -> bool:
    """Whether an output is there: in the folder, and in the store when one is attached."""
    attached = attached_store(out)
    if attached is None:
        return (out / relpath).exists()
    store, files = attached
    return _stored(store, relpath) and (not files or (out / relpath).exists())


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
            tags = repo.tags()
            latest: list[DigestLink] = []
            if settings.digest.enabled:
                from .digest import refresh_digests  # digest imports this module

                digest_written, latest = refresh_digests(settings, repo, full=False)
                written += digest_written
            pages_written, light = _tag_outputs(settings, repo, tags, feeds=set(), pages=set())  # missing pages
            specs = [all_spec(settings, repo), *light]
            written += pages_written + _index(settings, repo, tags, specs, latest)
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

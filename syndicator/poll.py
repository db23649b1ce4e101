"""Remote sources (``feed``, ``html``): one poll = stored HTTP state → conditional GET → parse → normalize →
one batch stored together with the new HTTP state; or a failure recorded with its back-off.

The rules that need the stored state live here (the fetch itself is in ``sources/http.py``, parsing in
``sources/feed.py`` and ``sources/html.py``):
- a permanent redirect (301/308) seen 3 polls in a row to the same target moves the source (logged); a 302 never;
- ``410 Gone`` disables the source with that reason until its configured URL changes;
- ``429``/``503`` wait for ``Retry-After``; other failures back off exponentially (capped at a day);
- ``Cache-Control: max-age`` and RSS ``<ttl>`` can only lengthen the configured interval;
- an item whose raw fields are unchanged is not normalized again; an html article page already stored is
  not fetched again.
No transaction is open while the network is read.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from . import clock, limits
from .config import Settings, SourceSettings, parse_duration
from .errors import FetchError, Gone, ParseError, RetryLater, SyndicatorError
from .normalize import normalize_item
from .sources import feed as feed_mod
from .sources import html as html_mod
from .sources import http
from .storage.repo import BatchResult, FetchState, FileState, ItemChange, Repository
from .types import Article, RawItem, SourceReport

log = logging.getLogger(__name__)
MAX_BACKOFF = 86400.0
MOVE_AFTER = 3  # polls in a row that saw the same permanent redirect


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one poll read from the network, before anything is stored."""

    items: tuple[RawItem, ...]
    errors: tuple[tuple[str, str], ...]  # (key, reason) of items that could not be read
    result: http.FetchResult
    ttl_seconds: float | None = None
    already_stored: int = 0  # html listing items whose article page was not fetched again
    not_items: tuple[str, ...] = ()  # listing elements matching `item` without a title (ad slots …): skipped


@dataclass(frozen=True, slots=True)
class Checked:
    """One item ``sources check`` would store: its article (or why not) and whether it is already stored."""

    key: str
    stored: bool
    article: Article | None
    error: str | None = None


def options(settings: Settings, src: SourceSettings) -> http.FetchOptions:
    return http.FetchOptions.for_source(src, settings.http, allow_private_networks=settings.allow_private_networks)


def raw_digest(item: RawItem) -> str:
    """A hash of everything a remote item carries: unchanged → not normalized again."""
    parts = (item.title, item.url, item.published.isoformat() if item.published else None,
             item.updated.isoformat() if item.updated else None, item.date_text, item.author, item.content_html,
             item.summary_html, "\x1e".join(item.tags), item.channel)
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode("utf-8")).hexdigest()


def backoff(interval: float, failures: int) -> float:
    """Twice the interval per failure in a row, at most a day (never less than the interval)."""
    return max(interval, min(interval * float(2 ** min(failures, 20)), MAX_BACKOFF))


# -- fetching and parsing (no storage) ----------------------------------------------------------------

def fetch_items(
    settings: Settings, src: SourceSettings, url: str, *, etag: str | None = None, last_modified: str | None = None,
    skip_pages: Callable[[str], bool] = lambda key: False,
) -> Fetched:
    """GET the feed or listing; for html with ``selectors.content``, the article pages not skipped."""
    opts = options(settings, src)
    result = http.fetch(url, opts, etag=etag, last_modified=last_modified)
    if result.not_modified:
        return Fetched((), (), result)
    now = clock.now()
    if src.type == "feed":
        parsed = feed_mod.parse_feed(result.content, result.content_type, result.final_url, source=src.name,
                                     timezone=src.timezone, fetched=now)
        if parsed.problem:
            log.info("%s: feed read despite: %s", src.name, parsed.problem)
        return Fetched(parsed.items, (), result, parsed.ttl_seconds)
    assert src.selectors is not None  # config guarantees it for html
    listing = html_mod.parse_listing(result.content, result.content_type, result.final_url, src.selectors,
                                     source=src.name, timezone=src.timezone, fetched=now)
    errors: list[tuple[str, str]] = []
    if not src.selectors.content:
        return Fetched(listing.items, (), result, not_items=listing.skipped)
    skipped = {it.key for it in listing.items if skip_pages(it.key)}
    todo = [it for it in listing.items if it.url and it.key not in skipped]
    pages = _fetch_pages(src, opts, todo)
    items: list[RawItem] = []
    for it in listing.items:
        if it.key not in pages:
            if it.key not in skipped:
                errors.append((it.key, "no link to an article page"))
            continue
        body = pages[it.key]
        if isinstance(body, str):
            items.append(replace(it, content_html=body, summary_html=it.content_html))
        else:
            errors.append((it.key, body.reason if isinstance(body, ParseError) else str(body)))
    return Fetched(tuple(items), tuple(errors), result, already_stored=len(skipped), not_items=listing.skipped)


def _fetch_pages(
    src: SourceSettings, opts: http.FetchOptions, todo: list[RawItem]
) -> dict[str, str | SyndicatorError]:
    """Article pages, at most ``max_connections`` at once; the host limiter spaces them by ``min_interval``."""
    assert src.selectors is not None and src.selectors.content is not None
    content, remove = src.selectors.content, src.selectors.remove

    def one(item: RawItem) -> str | SyndicatorError:
        assert item.url is not None
        try:
            page = http.fetch(item.url, opts)
            return html_mod.parse_article(page.content, page.content_type, page.final_url, content, remove,
                                          source=src.name)
        except SyndicatorError as exc:
            log.warning("%s: article page %s: %s", src.name, item.url, exc)
            return exc

    if not todo:
        return {}
    with ThreadPoolExecutor(max_workers=opts.max_connections, thread_name_prefix=f"poll-{src.name}") as pool:
        return dict(zip((it.key for it in todo), pool.map(one, todo), strict=True))


# -- one poll with storage ----------------------------------------------------------------------------

def sync_remote(
    settings: Settings, repo: Repository, src: SourceSettings, *, full: bool = False
) -> tuple[SourceReport, BatchResult | None]:
    """Poll one remote source and store what changed; failures are recorded, never raised."""
    assert src.url is not None
    report = SourceReport(src.name)
    now = clock.now()
    interval = parse_duration(src.every)
    state = repo.fetch_state(src.name)
    if state.configured_url != src.url:  # new source, or its URL was changed in config: start over
        if state.configured_url is not None:
            log.info("%s: configured URL changed to %s; HTTP state reset", src.name, src.url)
        state = FetchState(configured_url=src.url, consecutive_failures=state.consecutive_failures)
    if state.disabled_reason:
        log.warning("%s: disabled (%s); change its url in the config to poll it again", src.name, state.disabled_reason)
        report.disabled = state.disabled_reason
        return report, None
    url = state.current_url or src.url
    try:
        stored = repo.article_keys(src.name) if src.type == "html" else set()
        fetched = fetch_items(settings, src, url, etag=None if full else state.etag,
                              last_modified=None if full else state.last_modified,
                              skip_pages=lambda key: key in stored and not full)
    except Gone as exc:
        reason = f"410 Gone since {now:%Y-%m-%d %H:%M} UTC: {exc.url or url}"
        repo.save_fetch_state(src.name, replace(state, disabled_reason=reason, last_status=410))
        log.error("%s: disabled: %s", src.name, reason)
        return _failed(report, exc, None), None
    except RetryLater as exc:
        wait = exc.retry_after if exc.retry_after is not None else backoff(interval, state.consecutive_failures + 1)
        repo.save_fetch_state(src.name, replace(state, last_status=exc.status))
        return _failed(report, exc, now + timedelta(seconds=max(wait, 1.0))), None
    except FetchError as exc:
        repo.save_fetch_state(src.name, replace(state, last_status=exc.status))
        return _failed(report, exc, now + timedelta(seconds=backoff(interval, state.consecutive_failures + 1))), None
    result = fetched.result
    new_state = _after_success(src, state, url, result, fetched.ttl_seconds, interval)
    report.next_due = now + timedelta(seconds=new_state.interval_seconds or interval)
    if result.not_modified:
        repo.save_fetch_state(src.name, new_state)
        return report, None
    known = {} if full else repo.file_states(src.name)
    batch: list[ItemChange] = []
    for item in fetched.items:
        digest = raw_digest(item)
        old = known.get(item.key)
        if old is not None and old[2] == digest:  # (size, mtime_ns, raw_hash)
            report.unchanged += 1
            continue
        try:
            article = normalize_item(item, settings.normalize, settings.tags)
            article, notes = limits.bound(article, settings.limits, now=clock.now())
            for note in notes:
                log.warning("%s: %s", f"{src.name}/{item.key}", note)
            batch.append(ItemChange(item.key, FileState(raw_hash=digest), article))
        except ParseError as exc:
            _item_error(report, src.name, item.key, exc.reason)
            batch.append(ItemChange(item.key, FileState(raw_hash=digest), None, error=exc.reason))
    for key, reason in fetched.errors:
        _item_error(report, src.name, key, reason)
    for reason in fetched.not_items:  # an ad slot is not a failure: counted, logged, no error exit
        log.info("%s: listing element skipped: %s", src.name, reason)
        report.skipped += 1
    report.unchanged += fetched.already_stored
    r = repo.save_batch(src.name, batch, fetch_state=new_state)
    report.new += r.new
    report.updated += r.updated
    report.unchanged += r.unchanged
    report.duplicates += r.duplicates
    return report, r


def _item_error(report: SourceReport, source: str, key: str, reason: str) -> None:
    log.warning("%s/%s: skipped: %s", source, key, reason)
    report.skipped += 1
    report.errors.append(f"{key}: {reason}")


def _failed(report: SourceReport, exc: SyndicatorError, next_due: datetime | None) -> SourceReport:
    log.error("%s", exc)
    report.fetch_error = str(exc)
    report.errors.append(str(exc))
    report.next_due = next_due
    return report


def _after_success(
    src: SourceSettings, state: FetchState, url: str, result: http.FetchResult, ttl: float | None, interval: float
) -> FetchState:
    """The HTTP state after a 200/304: validators, redirect streak (and a move), interval."""
    current, target, count = state.current_url, None, 0
    moved = result.permanent_redirect
    if moved is not None:
        count = state.redirect_count + 1 if moved == state.redirect_target else 1
        target = moved
        if count >= MOVE_AFTER:
            log.warning("%s: moved permanently: %s → %s (seen %d times in a row); stored URL updated",
                        src.name, url, moved, count)
            current, target, count = moved, None, 0
    longest = max(interval, result.max_age or 0.0, ttl or 0.0)
    if result.not_modified and state.interval_seconds:
        longest = max(longest, float(state.interval_seconds))  # the <ttl> is in the body a 304 does not send
    return replace(
        state,
        etag=result.etag if not result.not_modified else (result.etag or state.etag),
        last_modified=result.last_modified if not result.not_modified else (result.last_modified or state.last_modified),
        current_url=current, last_status=result.status, redirect_target=target, redirect_count=count,
        interval_seconds=int(longest), disabled_reason=None,
    )


# -- `syndicator sources check` -----------------------------------------------------------------------

def check(settings: Settings, repo: Repository | None, src: SourceSettings, *, limit: int = 20) -> list[Checked]:
    """Fetch once (unconditionally) and normalize, storing nothing: what a sync would add."""
    assert src.url is not None
    url = src.url
    stored: set[str] = set()
    if repo is not None:
        with_state = repo.fetch_state(src.name) if src.name in {s.name for s in repo.source_status()} else None
        if with_state is not None and with_state.configured_url == src.url and with_state.current_url:
            url = with_state.current_url
        stored = repo.article_keys(src.name) if with_state is not None else set()
    shown = 0

    def skip(key: str) -> bool:  # article pages: only for the first `limit` new items
        nonlocal shown
        if key in stored:
            return True
        shown += 1
        return shown > limit

    fetched = fetch_items(settings, src, url, skip_pages=skip)
    out: list[Checked] = []
    for item in fetched.items[:limit]:
        try:
            out.append(Checked(item.key, item.key in stored, normalize_item(item, settings.normalize, settings.tags)))
        except ParseError as exc:
            out.append(Checked(item.key, item.key in stored, None, exc.reason))
    out.extend(Checked(key, False, None, reason) for key, reason in fetched.errors[: max(limit - len(out), 0)])
    return out

"""Daily digests at the edge: which local days changed, their pages and feeds, and the once-a-day e-mail.

``run_digest(settings, repo, day, email)`` is the one entry point for the CLI (``syndicator digest``) and the
service's daily job at ``digest.time``. ``refresh_digests`` is what ``publish`` calls after a sync: it
re-renders only the days whose stories changed (a fingerprint of story ids and change times per day).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from . import clock, mail
from .config import Settings
from .errors import ConfigError
from .render.digest import (
    ARCHIVE_PAGE,
    DIGEST_FEED,
    DigestFeedItem,
    build_digest,
    day_bounds,
    digest_body,
    digest_path,
    digest_sections,
    digest_title,
    feed_item,
    fingerprint,
    local_day,
    render_digest_archive,
    render_digest_feed,
    render_digest_html,
    render_digest_markdown,
    reusable_feed_items,
    zone,
)
from .render.feeds import EPOCH, as_utc
from .render.site import DigestLink
from .render.write import write_if_changed
from .storage.repo import DigestState, Repository
from .types import Digest, DigestOptions, SiteInfo, StoryEntry

if TYPE_CHECKING:
    from .publish import Stage  # publish imports this module

log = logging.getLogger(__name__)
STALE_CLAIM = timedelta(hours=1)  # a "sending" mark older than this is a crash mid-send: retry


@dataclass(frozen=True, slots=True)
class DigestRun:
    """What ``run_digest`` did: the day, its story count, files written, and the e-mail outcome."""

    day: date
    stories: int
    files_written: int
    email: str  # "not-requested" | "sent" | "already-sent" | "in-progress" | "no-stories"
    path: str | None  # digest/YYYY-MM-DD.html, None when the day has no stories

    def summary(self) -> str:
        where = f" → {self.path}" if self.path else " (no page, no feed entry)"
        return f"digest {self.day.isoformat()}: stories={self.stories}{where} files_written={self.files_written} email={self.email}"


def options(settings: Settings) -> DigestOptions:
    d = settings.digest
    return DigestOptions(tag_order=tuple(d.tag_order), other_tags=d.other_tags, top_stories=d.top_stories,
                         top_min_channels=d.top_min_channels,
                         max_per_tag=d.max_per_tag, max_tags=d.max_tags, untagged=d.untagged)


def _site(settings: Settings) -> SiteInfo:
    from .publish import site_info  # publish imports this module

    return site_info(settings)


def default_day(settings: Settings, now: datetime | None = None) -> date:
    """The day ``digest.day`` names: the previous local day (default) or the current one."""
    today = local_day(now or clock.now(), settings.site.timezone)
    return today - timedelta(days=1) if settings.digest.day == "previous" else today


def _day_stamps(settings: Settings, repo: Repository) -> dict[date, list[tuple[str, datetime]]]:
    """Every live story's (id, change time), by local day; ``local_day`` with the zone looked up once (this
    runs over every story after each sync that changed one)."""
    days: dict[date, list[tuple[str, datetime]]] = defaultdict(list)
    tz = zone(settings.site.timezone)
    for sid, published, changed in repo.story_stamps():
        # = local_day(published): dropping the microseconds (as_utc) never moves a time across midnight
        days[(published if published.tzinfo is UTC else as_utc(published)).astimezone(tz).date()].append((sid, changed))
    return days


def _load(settings: Settings, repo: Repository, site: SiteInfo, day: date, fp: str,
          stamps: list[tuple[str, datetime]] | None = None) -> Digest:
    """A day's digest from the database; records its fingerprint (``updated`` moves only on change).
    ``stamps``: the day's (story, change time) as just read for its fingerprint, when the caller has them."""
    start, end = day_bounds(day, settings.site.timezone)
    entries = repo.day_entries(start, end, site.base_url, stamps=stamps)  # digests show no bodies
    state = repo.save_digest(day.isoformat(), fp, len(entries), _newest(entries))
    return build_digest(day, entries, options(settings), state.updated)


def _newest(entries: list[StoryEntry]) -> datetime:
    # as_utc once, of the latest: it is monotonic, and the database's dates are all aware
    return as_utc(max((max(e.updated, e.published) for e in entries), default=EPOCH))


PROGRESS_DAYS = 20  # a progress bar is told the days done this often
LOAD_TOGETHER = 2000  # stories of consecutive days loaded with one query and recorded in one transaction


def _load_many(settings: Settings, repo: Repository, site: SiteInfo, days: list[date], prints: dict[date, str],
               counts: dict[date, int]) -> Iterator[tuple[date, Digest]]:
    """``_load`` of many days (a full render: every day), a few days at a time: one query and one
    transaction for up to ``LOAD_TOGETHER`` stories instead of one of each per day (77 days of the real
    corpus: 0.14 s → 0.05 s of queries). A busy day is loaded alone."""
    tz = settings.site.timezone

    def load(group: list[date]) -> Iterator[tuple[date, Digest]]:
        loaded = repo.entries_of_days([day_bounds(d, tz) for d in group], site.base_url)
        states = repo.save_digests([(d.isoformat(), prints[d], len(e), _newest(e))
                                    for d, e in zip(group, loaded, strict=True)])
        for d, entries in zip(group, loaded, strict=True):
            yield d, build_digest(d, entries, options(settings), states[d.isoformat()].updated)

    group: list[date] = []
    stories = 0  # in the group
    for day in days:
        if group and (day - group[-1] > timedelta(days=1) or stories + counts.get(day, 0) > LOAD_TOGETHER):
            yield from load(group)
            group, stories = [], 0
        group.append(day)
        stories += counts.get(day, 0)
    if group:
        yield from load(group)


@dataclass(frozen=True, slots=True)
class Touched:
    """What a sync changed, as the digests need it: the stories, and the ``published`` some of them had
    before the sync moved them (their old day lost a story)."""

    stories: frozenset[str]
    moved_from: frozenset[datetime] = frozenset()


def _all_days(settings: Settings, repo: Repository) -> tuple[dict[date, str], dict[date, int]]:
    """Every day's fingerprint and story count, from every live story's stamps."""
    stamps = _day_stamps(settings, repo)
    return {day: fingerprint(v) for day, v in stamps.items()}, {day: len(v) for day, v in stamps.items()}


def _days_of(settings: Settings, repo: Repository, touched: Touched) -> set[date]:
    """The local days a sync's changes fall on: its stories' days now, and the days they moved away from."""
    tz = settings.site.timezone
    return ({local_day(p, tz) for p in repo.stories_published(touched.stories)}
            | {local_day(p, tz) for p in touched.moved_from})


def forget_days(settings: Settings, repo: Repository, touched: Touched) -> None:
    """With digests off, mark the days a sync touched as changed in the digest records: when digests are on
    again, the refresh that reads only its own sync's days (``_touched_days``) re-renders these as well."""
    repo.invalidate_digests(d.isoformat() for d in _days_of(settings, repo, touched))


def _touched_days(settings: Settings, repo: Repository, records: dict[str, DigestState], touched: Touched,
                  read: dict[date, list[tuple[str, datetime]]]) -> tuple[dict[date, str], dict[date, int]] | None:
    """``_all_days`` reading only the days a sync touched: the other days are as recorded by the refresh
    after the sync that last changed them. None when the records cannot be trusted for that (their counts
    do not add up to the live stories: digests were off while stories came or went), and every story is
    read instead. ``read``: filled with the stamps of the days read (their pages load them again otherwise)."""
    tz = settings.site.timezone
    days = _days_of(settings, repo, touched)
    days |= {date.fromisoformat(k) for k, r in records.items() if r.stories > 0 and not r.fingerprint}  # see forget_days
    prints = {date.fromisoformat(k): r.fingerprint for k, r in records.items() if r.stories > 0}
    counts = {date.fromisoformat(k): r.stories for k, r in records.items() if r.stories > 0}
    for day in days:
        stamps = read[day] = repo.stamps_between(*day_bounds(day, tz))
        if stamps:
            prints[day], counts[day] = fingerprint(stamps), len(stamps)
        else:
            prints.pop(day, None)
            counts.pop(day, None)
    if sum(counts.values()) != repo.story_count():
        log.info("digest records do not match the stories: checking every day")
        return None
    return prints, counts


def refresh_digests(settings: Settings, repo: Repository, *, full: bool = False, also: tuple[date, ...] = (),
                    touched: Touched | None = None,
                    progress: Stage | None = None) -> tuple[int, list[DigestLink]]:
    """Re-render the digest pages of the days whose stories changed (every day when ``full``), the digest
    feeds and the archive page; remove the pages of days left without stories.

    ``touched``: what the sync before changed; only its days are checked (instead of every story's stamps).
    ``progress`` is told the days done, every ``PROGRESS_DAYS`` (a first sync writes years of them).
    Returns (files written, the latest digests for the front page).
    """
    site = _site(settings)
    out = settings.output.dir
    records = repo.digest_records()
    read: dict[date, list[tuple[str, datetime]]] = {}
    known = None if full or touched is None else _touched_days(settings, repo, records, touched, read)
    prints, counts = known if known is not None else _all_days(settings, repo)
    changed = sorted(d for d, fp in prints.items() if full or d in also or records.get(d.isoformat()) is None
                     or records[d.isoformat()].fingerprint != fp)
    gone = sorted(k for k, r in records.items() if r.stories > 0 and date.fromisoformat(k) not in prints)
    written = 0
    days = sorted(prints)
    neighbours = {d: (days[i - 1] if i else None, days[i + 1] if i + 1 < len(days) else None)
                  for i, d in enumerate(days)}
    latest = days[::-1][: settings.digest.feed_entries]
    # only the days the feeds may need are kept (their feed entries): memory stays flat on a full render
    loaded: dict[date, DigestFeedItem] = {}

    def write_page(day: date, md: bool = False, digest: Digest | None = None) -> int:
        if digest is None:
            digest = _load(settings, repo, site, day, prints[day], read.get(day))
        sections = digest_sections(site, digest)
        body = digest_body(site, digest, sections)
        if day in latest:
            loaded[day] = feed_item(site, digest, body)
        prev, nxt = neighbours[day]
        n: int = write_if_changed(out, digest_path(day),
                                  render_digest_html(site, digest, previous=prev, following=nxt, body=body))
        if md:
            n += write_if_changed(out, digest_path(day, "md"), render_digest_markdown(site, digest, sections))
        return n

    pages: Iterator[tuple[date, Digest | None]] = (
        _load_many(settings, repo, site, changed, prints, counts) if full else ((day, None) for day in changed))
    for i, (day, digest) in enumerate(pages):
        if progress is not None and i % PROGRESS_DAYS == 0:
            progress(f"digests {i:,}/{len(changed):,} days")
        written += write_page(day, md=True, digest=digest)
    # the days next to a new or vanished day: their "previous/next day" links change (a day that only changed
    # leaves its neighbours' links as they were)
    came_or_went = _appeared(changed, records) | {date.fromisoformat(k) for k in gone}
    near: set[date] = set()
    for t in came_or_went:
        i = bisect_left(days, t)
        near.update(days[j] for j in (i - 1, i + 1 if i < len(days) and days[i] == t else i) if 0 <= j < len(days))
    for day in sorted(near - set(changed)):
        if (out / digest_path(day)).exists():
            written += write_page(day)
    for key in gone:
        for page in (out / digest_path(date.fromisoformat(key)), out / digest_path(date.fromisoformat(key), "md")):
            if page.exists():
                page.unlink()
                written += 1
                log.info("removed %s (the day has no stories left)", page.name)
    if gone:
        repo.delete_digests(gone)
    feed_missing = not (out / f"{DIGEST_FEED}.atom").exists()
    if changed or gone or feed_missing:
        # the feeds hold the latest days only: a change to an older day (an old post edited) leaves their bytes
        # as they are, so the latest days are not loaded and rendered again for it
        if feed_missing or gone or not set(changed).isdisjoint(latest):
            kept = {} if full or feed_missing else _kept_feed_items(settings, site, latest, loaded, prints, records)
            recent = [loaded.get(d) or kept.get(d) or feed_item(site, _load(settings, repo, site, d, prints[d]))
                      for d in latest]
            for fmt in ("atom", "rss"):
                written += write_if_changed(out, f"{DIGEST_FEED}.{fmt}", render_digest_feed(site, recent, fmt))
        written += write_if_changed(out, ARCHIVE_PAGE,
                                    render_digest_archive(site, [(d, counts[d]) for d in days]))
    links = [DigestLink(d.isoformat(), counts[d]) for d in days[::-1][: settings.digest.index_entries]]
    return written, links


def warm_latest_day(settings: Settings, repo: Repository) -> None:
    """Load the newest day's digest entries (the day new posts land on) once, for a repository that
    ``remember_busy_days``: the service's first change after a restart then re-renders that day as fast
    as the next ones (8,000 stories: ~0.5 s once at start instead of on the first change)."""
    if not settings.digest.enabled:
        return
    days = [k for k, r in repo.digest_records().items() if r.stories > 0]
    if days:  # a quiet day is loaded and not kept (day_entries keeps busy days only): cheap either way
        site = _site(settings)
        repo.day_entries(*day_bounds(date.fromisoformat(max(days)), settings.site.timezone), site.base_url)


def _appeared(changed: list[date], records: dict[str, DigestState]) -> set[date]:
    """The changed days that had no stories (no page) before this refresh."""
    return {d for d in changed if (r := records.get(d.isoformat())) is None or r.stories == 0}


def _kept_feed_items(settings: Settings, site: SiteInfo, latest: list[date], loaded: dict[date, DigestFeedItem],
                     prints: dict[date, str], records: dict[str, DigestState]) -> dict[date, DigestFeedItem]:
    """The entries of the digest feed as written before for the latest days this refresh did not change: a
    new post today changes one day of the feed, and the other days need not be loaded and rendered again."""
    wanted = {d: (r.stories, r.updated) for d in latest if d not in loaded
              and (r := records.get(d.isoformat())) is not None and r.fingerprint == prints[d]}
    if not wanted:
        return {}
    try:
        atom = (settings.output.dir / f"{DIGEST_FEED}.atom").read_bytes()
    except OSError:
        return {}
    return reusable_feed_items(site, atom, wanted)


def run_digest(settings: Settings, repo: Repository, day: date, email: bool) -> DigestRun:
    """Make ``day``'s digest (page, Markdown, feed entry, archive, front page) and, when ``email``, send it
    once: the e-mail state is in the database, so a restart or a second run never sends the day twice."""
    from .publish import write_front_page  # publish imports this module

    # the digest records as every sync leaves them (checked: they must add up to the live stories), not
    # every story's stamps: at 100,000 stories that read held the writer's turn for seconds every morning
    written, latest = refresh_digests(settings, repo, also=(day,), touched=Touched(frozenset()))
    written += write_front_page(settings, repo, latest)
    site = _site(settings)
    record = repo.digest_records().get(day.isoformat())  # the refresh just recorded the day's count
    stories = record.stories if record is not None else 0
    if not stories:
        return DigestRun(day, 0, written, "no-stories" if email else "not-requested", None)
    if not email:
        return DigestRun(day, stories, written, "not-requested", digest_path(day))
    return DigestRun(day, stories, written, _send_once(settings, repo, site, day), digest_path(day))


def _send_once(settings: Settings, repo: Repository, site: SiteInfo, day: date) -> str:
    cfg = settings.digest.email
    if not cfg.to:
        raise ConfigError("digest.email.to lists no recipient: nothing to send to", path=str(settings.config_path or ""))
    key = day.isoformat()
    record = repo.digest_records().get(key)
    if record is not None and record.email_status == "sent":
        log.info("digest %s was already e-mailed at %s", key, record.email_sent_at)
        return "already-sent"
    if not repo.claim_digest_email(key, stale_before=clock.now() - STALE_CLAIM):
        now_record = repo.digest_records().get(key)
        return "already-sent" if now_record is not None and now_record.email_status == "sent" else "in-progress"
    try:
        fp = fingerprint(repo.stamps_between(*day_bounds(day, settings.site.timezone)))
        digest = _load(settings, repo, site, day, fp)
        subject = cfg.subject.format(title=site.title, date=key, count=digest.count)
        msg = mail.build_message(
            cfg, subject=subject or digest_title(site, digest),
            text=render_digest_markdown(site, digest).decode("utf-8"),
            html=render_digest_html(site, digest, absolute=True).decode("utf-8"),
        )
        refused = mail.send(cfg, msg)
    except BaseException:
        repo.finish_digest_email(key, sent=False)
        raise
    if refused:
        log.warning("digest %s: the server refused %s", key, ", ".join(refused))
    repo.finish_digest_email(key, sent=True, recipients=", ".join(cfg.to), message_id=str(msg["Message-ID"]))
    log.info("digest %s e-mailed to %s", key, ", ".join(cfg.to))
    return "sent"


def run_daily_digest(settings: Settings, repo: Repository, now: datetime | None = None) -> DigestRun:
    """The service's job at ``digest.time``: the ``digest.day`` day, e-mailed when ``digest.email.enabled``."""
    return run_digest(settings, repo, default_day(settings, now), settings.digest.email.enabled)

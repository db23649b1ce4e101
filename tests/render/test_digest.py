"""The pure digest: local-day bounds, grouping and ranking, the page, Markdown and the digest feeds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import feedparser
from hypothesis import given, settings
from hypothesis import strategies as st

from syndicator.render.digest import (
    build_digest,
    channels,
    day_bounds,
    digest_id,
    fingerprint,
    local_day,
    render_digest_archive,
    render_digest_feed,
    render_digest_html,
    render_digest_markdown,
)
from syndicator.types import Carrier, Digest, DigestOptions, SiteInfo, StoryEntry, Tag

from .conftest import BASE, make_entry

DAY = date(2024, 5, 1)
SH = "Asia/Shanghai"
SHIZHENG, CHONGQING, JINGJI = Tag("时政", "shizheng"), Tag("重庆", "chongqing"), Tag("经济", "jingji")


def at_local(hour: int, minute: int, day: date = DAY) -> datetime:
    """A UTC datetime for a local (+08:00) wall-clock time."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def entry(n: int, hour: int, minute: int = 0, *, tags: tuple[Tag, ...] = (SHIZHENG,), carriers: int = 0,
          channel: str | None = "重庆频道") -> StoryEntry:
    also = tuple(Carrier(f"频道{k}", f"https://ex.org/{n}/{k}") for k in range(carriers))
    t = at_local(hour, minute)
    return make_entry(n, published=t, updated=t, tags=tags, also_in=also, channel=channel)


def test_day_bounds_are_local_midnights() -> None:
    start, end = day_bounds(DAY, SH)
    assert start == datetime(2024, 4, 30, 16, 0, tzinfo=UTC)
    assert end == datetime(2024, 5, 1, 16, 0, tzinfo=UTC)
    assert day_bounds(DAY, "UTC") == (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC))
    # a DST change makes a 23-hour local day
    s, e = day_bounds(date(2024, 3, 10), "America/New_York")
    assert e - s == timedelta(hours=23)


def test_00_30_and_23_59_local_belong_to_the_local_day() -> None:
    early = at_local(0, 30)  # 2024-04-30 16:30 UTC: the previous day in UTC
    late = at_local(23, 59)
    assert early.date() == date(2024, 4, 30)
    assert local_day(early, SH) == DAY and local_day(late, SH) == DAY
    assert local_day(at_local(0, 0, date(2024, 5, 2)), SH) == date(2024, 5, 2)
    start, end = day_bounds(DAY, SH)
    assert start <= early < end and start <= late < end
    assert not (start <= at_local(23, 59, date(2024, 4, 30)) < end)


def test_top_stories_ranked_by_channels_then_recency_and_each_story_once() -> None:
    stories = [
        entry(1, 9, carriers=2),  # three channels
        entry(2, 10, carriers=1),  # two channels, newer
        entry(3, 8, carriers=1),  # two channels, older
        entry(4, 11, tags=(SHIZHENG, CHONGQING)),
        entry(5, 12, tags=(CHONGQING,)),
        entry(6, 13, tags=()),
        entry(7, 14, tags=(JINGJI, SHIZHENG)),
    ]
    d = build_digest(DAY, stories, DigestOptions(top_stories=5), at_local(15, 0))
    titles = [(s.title, [e.story_id[-1] for e in s.entries]) for s in d.sections]
    assert titles[0] == ("要闻", ["1", "2", "3"])  # 3 channels, then 2 channels newest first
    assert d.sections[0].top
    shown = [e.story_id for s in d.sections for e in s.entries]
    assert sorted(shown) == sorted(e.story_id for e in stories)  # every story exactly once
    assert len(shown) == len(set(shown)) == d.count == 7
    # tags by count (重庆 2, 时政 2 → name order), 4 goes to the first of its tags in section order
    rest = {s.title: [e.story_id[-1] for e in s.entries] for s in d.sections[1:]}
    assert rest["其他"] == ["6"]
    assert sum(len(v) for v in rest.values()) == 4


def test_three_channel_story_listed_once_with_its_channels(site: SiteInfo) -> None:
    story = entry(1, 9, carriers=2)
    assert channels(story) == ("重庆频道", "频道0", "频道1")
    d = build_digest(DAY, [story, story, entry(2, 10)], DigestOptions(), at_local(10, 0))
    assert d.count == 2
    page = render_digest_html(site, d).decode()
    assert page.count(story.title) == 1
    assert "重庆频道、<a href=\"https://ex.org/1/0\">频道0</a>、<a href=\"https://ex.org/1/1\">频道1</a>" in page
    assert "3 个频道刊发" in page
    md = render_digest_markdown(site, d).decode()
    assert md.count(story.title) == 1 and "重庆频道、频道0、频道1" in md


def test_tag_order_limits_and_untagged_title() -> None:
    stories = [entry(n, 8 + n, tags=(JINGJI,) if n % 2 else (SHIZHENG,)) for n in range(1, 8)]
    stories.append(entry(9, 20, tags=()))
    opts = DigestOptions(tag_order=("jingji",), top_stories=0, max_per_tag=2, untagged="未分类")
    d = build_digest(DAY, stories, opts, at_local(21, 0))
    assert [s.title for s in d.sections] == ["经济", "时政", "未分类"]
    assert [len(s.entries) for s in d.sections] == [2, 2, 1]
    assert [s.more for s in d.sections] == [2, 1, 0]
    assert [e.story_id[-1] for e in d.sections[0].entries] == ["7", "5"]  # newest first
    # max_tags: the tags beyond it go to the untagged section
    d2 = build_digest(DAY, stories, replace(opts, max_tags=1, max_per_tag=100), at_local(21, 0))
    assert [s.title for s in d2.sections] == ["经济", "未分类"] and d2.sections[1].entries[0].story_id[-1] == "9"
    # by name instead of by count
    d3 = build_digest(DAY, stories, DigestOptions(top_stories=0, other_tags="name"), at_local(21, 0))
    assert [s.title for s in d3.sections] == [*sorted(["经济", "时政"]), "其他"]


def test_top_min_channels_one_makes_top_the_newest() -> None:
    stories = [entry(n, 8 + n) for n in range(1, 5)]
    d = build_digest(DAY, stories, DigestOptions(top_stories=2, top_min_channels=1), at_local(21, 0))
    assert [e.story_id[-1] for e in d.sections[0].entries] == ["4", "3"]
    d = build_digest(DAY, stories, DigestOptions(top_stories=2), at_local(21, 0))
    assert not any(s.top for s in d.sections)  # nobody was carried by two channels


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # story number (duplicates happen)
            st.integers(0, 23),
            st.sets(st.sampled_from([SHIZHENG, CHONGQING, JINGJI]), max_size=3),
            st.integers(0, 3),
        ),
        max_size=30,
    ),
    st.integers(0, 6),
    st.integers(1, 3),
)
def test_property_every_story_exactly_once(
    raw: list[tuple[int, int, set[Tag], int]], top: int, max_tags: int
) -> None:
    stories = [entry(n, h, tags=tuple(sorted(t, key=lambda x: x.slug)), carriers=c) for n, h, t, c in raw]
    d = build_digest(DAY, stories, DigestOptions(top_stories=top, max_tags=max_tags, max_per_tag=1000),
                     at_local(0, 0))
    shown = [e.story_id for s in d.sections for e in s.entries]
    assert len(shown) == len(set(shown)) == d.count == len({e.story_id for e in stories})
    assert all(s.entries for s in d.sections)
    tops = [e for s in d.sections if s.top for e in s.entries]
    ranks = [(-len(channels(e)), -e.published.timestamp()) for e in tops]
    assert ranks == sorted(ranks) and len(tops) <= top


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_digest_page_is_standalone_readable_and_printable(site: SiteInfo) -> None:
    d = build_digest(DAY, [entry(1, 0, 30, carriers=2), entry(2, 23, 59)], DigestOptions(), at_local(23, 59))
    data = render_digest_html(site, d, previous=date(2024, 4, 30))
    text = data.decode("utf-8")
    p = _Page()
    p.feed(text)
    kinds = [t for t, _ in p.tags]
    assert text.startswith("<!DOCTYPE html>")
    assert ("html", {"lang": "zh-CN"}) in p.tags and '<meta charset="utf-8">' in text
    assert any(t == "meta" and a.get("name") == "viewport" for t, a in p.tags)
    assert "script" not in kinds and "img" not in kinds and "@media print" in text
    assert not any(t == "link" and a.get("rel") == "stylesheet" for t, a in p.tags)  # no external assets
    alternates = [a.get("href") for t, a in p.tags if t == "link" and a.get("rel") == "alternate"]
    assert f"{BASE}digest.atom" in alternates and f"{BASE}all.rss" in alternates
    assert "00:30" in text and "23:59" in text and "2024-05-01" in text
    assert 'href="2024-04-30.html"' in text and "后一天" not in text
    assert '<a href="#top">要闻</a>（1）' in text and '<a href="#tag-shizheng">时政</a>（1）' in text  # contents
    assert render_digest_html(site, d, previous=date(2024, 4, 30)) == data  # deterministic


def test_markdown_escapes_and_lists_every_story(site: SiteInfo) -> None:
    d = build_digest(DAY, [entry(1, 9, tags=()), replace(entry(2, 10), title="标题 [1] *星*")],
                     DigestOptions(), at_local(12, 0))
    md = render_digest_markdown(site, d).decode()
    assert md.startswith("# 重庆新闻 每日摘要 2024-05-01（2 篇）\n")
    assert "## 时政" in md and "## 其他" in md
    assert r"标题 \[1\] \*星\*" in md and f"]({BASE}articles/" in md


def _digest(day: date, n: int, updated: datetime) -> Digest:
    es = [replace(entry(k, 9 + k), published=at_local(9 + k, 0, day), updated=at_local(9 + k, 0, day))
          for k in range(n)]
    return build_digest(day, es, DigestOptions(), updated)


def test_digest_feeds_parse_one_entry_per_day_with_stable_ids(site: SiteInfo) -> None:
    d1 = _digest(date(2024, 5, 1), 3, at_local(12, 0, date(2024, 5, 1)))
    d2 = _digest(date(2024, 5, 2), 2, at_local(18, 0, date(2024, 5, 2)))
    empty = _digest(date(2024, 5, 3), 0, at_local(0, 0, date(2024, 5, 3)))
    for fmt in ("atom", "rss"):
        data = render_digest_feed(site, [d1, empty, d2], fmt)  # type: ignore[arg-type]
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert [e.id for e in parsed.entries] == [digest_id(date(2024, 5, 2)), digest_id(date(2024, 5, 1))]
        assert parsed.entries[0].link == f"{BASE}digest/2024-05-02.html"
        assert "（2 篇）" in parsed.entries[0].title
        assert render_digest_feed(site, [d2, d1, empty], fmt) == data  # order of input does not matter
    atom = feedparser.parse(render_digest_feed(site, [d1, d2], "atom"))
    assert atom.feed.updated_parsed[:5] == (2024, 5, 2, 10, 0)  # newest entry's updated, not build time
    assert "新闻标题" in atom.entries[0].content[0].value


def test_archive_and_fingerprint(site: SiteInfo) -> None:
    page = render_digest_archive(site, [(date(2024, 4, 30), 2), (date(2024, 5, 1), 3), (date(2024, 5, 2), 0)])
    text = page.decode()
    assert text.index("2024-05-01.html") < text.index("2024-04-30.html") and "2024-05-02" not in text
    t = datetime(2024, 5, 1, tzinfo=UTC)
    assert fingerprint([("a", t), ("b", t)]) == fingerprint([("b", t), ("a", t)])
    assert fingerprint([("a", t)]) != fingerprint([("a", t + timedelta(seconds=1))])

"""render_feed: real parsing with feedparser, ids/links/dates/categories/content, determinism."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
from conftest import drawn_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from syndicator.render.feeds import render_feed
from syndicator.types import Carrier, FeedSpec, SiteInfo, StoryEntry

from .conftest import BASE, T0, make_entry

FORMATS = ("atom", "rss")


def parse(data: bytes) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def utc(struct: time.struct_time) -> datetime:
    return datetime(*struct[:6], tzinfo=UTC)


@pytest.mark.parametrize("fmt", FORMATS)
def test_entries_parse_with_ids_links_dates(fmt: str, spec: FeedSpec, site: SiteInfo) -> None:
    parsed = parse(render_feed(spec, site, fmt))  # type: ignore[arg-type]
    assert parsed.version == ("atom10" if fmt == "atom" else "rss20")
    assert [e.id for e in parsed.entries] == [f"urn:syndicator:story:{n:016x}" for n in range(3)]
    assert [e.link for e in parsed.entries] == [f"{BASE}articles/{n:016x}.html" for n in range(3)]
    for n, e in enumerate(parsed.entries):
        assert utc(e.published_parsed) == T0 - timedelta(hours=n)
        assert e.title == f"新闻标题 {n}"
    if fmt == "atom":
        assert utc(parsed.entries[0].updated_parsed) == T0 + timedelta(minutes=30)


@pytest.mark.parametrize("fmt", FORMATS)
def test_feed_metadata(fmt: str, spec: FeedSpec, site: SiteInfo) -> None:
    data = render_feed(spec, site, fmt)  # type: ignore[arg-type]
    parsed = parse(data)
    feed = parsed.feed
    assert feed.title == "全部新闻"
    assert feed.language == "zh-CN"
    assert feed.generator == "syndicator"
    assert feed.subtitle == "所有频道"
    links = {link.rel: link.href for link in feed.links}
    assert links["self"] == f"{BASE}all.{fmt}"
    assert feed.link == f"{BASE}index.html"
    # feed-level date == newest entry's updated, not the build time
    assert utc(feed.updated_parsed) == T0 + timedelta(minutes=30)


def test_rss_channel_link_is_alternate_not_self(tag_spec: FeedSpec, site: SiteInfo) -> None:
    root = etree.fromstring(render_feed(tag_spec, site, "rss"))
    assert root.findtext("channel/link") == f"{BASE}index.html#feed-tags-shizheng"
    self_link = root.find("channel/{http://www.w3.org/2005/Atom}link")
    assert self_link is not None and self_link.get("href") == f"{BASE}tags/shizheng.rss"
    assert root.findtext("channel/lastBuildDate") == "Wed, 01 May 2024 08:30:00 +0000"
    guid = root.find("channel/item/guid")
    assert guid is not None and guid.get("isPermaLink") == "false"
    assert root.findtext("channel/item/pubDate") == "Wed, 01 May 2024 08:00:00 +0000"


def test_author_and_categories(spec: FeedSpec, site: SiteInfo) -> None:
    atom = parse(render_feed(spec, site, "atom"))
    rss = parse(render_feed(spec, site, "rss"))
    assert atom.entries[0].author == "张三"
    assert rss.entries[0].author == "张三"  # dc:creator, no e-mail needed
    assert "author" not in atom.entries[1] and "author" not in rss.entries[1]
    atom_tags = [(t.term, t.scheme, t.label) for t in atom.entries[0].tags]
    assert atom_tags == [("shizheng", f"{BASE}tags/", "时政"), ("chongqing", f"{BASE}tags/", "重庆")]
    assert [t.term for t in rss.entries[0].tags] == ["时政", "重庆"]
    assert atom.entries[1].get("tags", []) == []
    assert b"<author>" not in render_feed(spec, site, "rss")


def test_summary_and_content(spec: FeedSpec, site: SiteInfo) -> None:
    atom = parse(render_feed(spec, site, "atom"))
    rss = parse(render_feed(spec, site, "rss"))
    for parsed in (atom, rss):
        first = parsed.entries[0]
        assert first.summary == "摘要 0"
        html = first.content[0].value
        assert html.startswith("<p>正文 0</p>")
        assert '同时刊发：<a href="https://cq.example.org/a/1">重庆频道</a>、晚报' in html
        assert "同时刊发" not in parsed.entries[1].content[0].value
    assert atom.entries[0].content[0].type == "text/html"


def test_summary_with_markup_characters_stays_text(site: SiteInfo) -> None:
    spec = FeedSpec("all", "t", "d", (make_entry(0, summary="a < b & c", title="x <b>y</b>"),))
    for fmt in FORMATS:
        entry = parse(render_feed(spec, site, fmt)).entries[0]  # type: ignore[arg-type]
        assert entry.title == "x <b>y</b>"
        assert "a &lt; b &amp; c" in entry.summary or entry.summary == "a < b & c"


@pytest.mark.parametrize("fmt", FORMATS)
def test_order_newest_first_and_duplicates_dropped(fmt: str, site: SiteInfo) -> None:
    shuffled = (make_entry(2), make_entry(0), make_entry(3), make_entry(1), make_entry(0, title="dup"))
    same_time = (make_entry(5, story_id="b"), make_entry(5, story_id="a"))
    spec = FeedSpec("all", "t", "d", shuffled + same_time)
    parsed = parse(render_feed(spec, site, fmt))  # type: ignore[arg-type]
    ids = [e.id.removeprefix("urn:syndicator:story:") for e in parsed.entries]
    assert ids == [f"{n:016x}" for n in range(4)] + ["a", "b"]
    assert len(parsed.entries) <= len(spec.entries)


@pytest.mark.parametrize("fmt", FORMATS)
def test_feed_updated_is_newest_entry_update(fmt: str, site: SiteInfo) -> None:
    # an older story updated later moves the feed date; build time never does
    entries = (make_entry(0), make_entry(5, updated=T0 + timedelta(days=1)))
    parsed = parse(render_feed(FeedSpec("all", "t", "d", entries), site, fmt))  # type: ignore[arg-type]
    assert utc(parsed.feed.updated_parsed) == T0 + timedelta(days=1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_feed_uses_epoch(fmt: str, site: SiteInfo) -> None:
    parsed = parse(render_feed(FeedSpec("tags/x", "t", "", ()), site, fmt))  # type: ignore[arg-type]
    assert parsed.entries == []
    assert utc(parsed.feed.updated_parsed) == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("fmt", FORMATS)
def test_deterministic_bytes(fmt: str, spec: FeedSpec, site: SiteInfo) -> None:
    first = render_feed(spec, site, fmt)  # type: ignore[arg-type]
    time.sleep(1.1)
    reordered = replace(spec, entries=tuple(reversed(spec.entries)))
    assert render_feed(reordered, site, fmt) == first  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_xml_invalid_characters_are_stripped(fmt: str, site: SiteInfo) -> None:
    bad = "\x00\x01\x08\x0b\x0c\x1f\ufffe\ud800"
    entry = make_entry(
        0,
        title=f"标题{bad}一",
        summary=f"摘{bad}要",
        content_html=f"<p>正{bad}文</p>",
        author=f"张{bad}三",
        link=f"{BASE}articles/x{bad}.html",
        also_in=(Carrier(f"频{bad}道", f"https://cq.example.org/{bad}"),),
    )
    spec = FeedSpec("all", f"全部{bad}", f"描述{bad}", (entry,))
    bad_site = replace(site, title=f"站{bad}点", description=f"d{bad}")
    parsed = parse(render_feed(spec, bad_site, fmt))  # type: ignore[arg-type]
    assert parsed.feed.title == "全部"
    e = parsed.entries[0]
    assert e.title == "标题一"
    assert e.author == "张三"
    assert e.link == f"{BASE}articles/x.html"
    assert "<p>正文</p>" in e.content[0].value


@pytest.mark.parametrize("fmt", FORMATS)
def test_naive_and_non_utc_dates_are_normalized(fmt: str, site: SiteInfo) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2024, 5, 1, 16, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    entry = make_entry(0, published=local, updated=local.replace(tzinfo=None))
    parsed = parse(render_feed(FeedSpec("all", "t", "d", (entry,)), site, fmt))  # type: ignore[arg-type]
    assert utc(parsed.entries[0].published_parsed) == T0


def test_unknown_format_is_a_render_error(spec: FeedSpec, site: SiteInfo) -> None:
    from syndicator.errors import RenderError

    with pytest.raises(RenderError):
        render_feed(spec, site, "json")  # type: ignore[arg-type]


text = drawn_text(st.characters(codec="utf-8") | st.sampled_from("\x00\x0b\ufffe<>&\"'"), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=text, summary=text, content=text, author=st.none() | text, label=text)
def test_arbitrary_strings_always_parse(
    title: str, summary: str, content: str, author: str | None, label: str
) -> None:
    site = SiteInfo(title=title, base_url=BASE, language="zh-CN", timezone="UTC", description=summary)
    entry = StoryEntry(
        story_id="s1",
        title=title,
        link=f"{BASE}articles/s1.html",
        published=T0,
        updated=T0,
        author=author,
        summary=summary,
        content_html=content,
        tags=(),
        also_in=(Carrier(label, None),),
    )
    spec = FeedSpec("all", title, summary, (entry,))
    for fmt in FORMATS:
        parsed = feedparser.parse(render_feed(spec, site, fmt))  # type: ignore[arg-type]
        assert parsed.bozo == 0, (fmt, parsed.get("bozo_exception"))
        assert len(parsed.entries) == 1
        assert parsed.entries[0].id == "urn:syndicator:story:s1"

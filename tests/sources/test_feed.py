"""sources/feed.py on recorded fixtures: every format, charsets, broken XML, identity rules, dates, tags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syndicator.errors import NotAFeed
from syndicator.sources.feed import entry_key, parse_feed

from .conftest import DATA

FETCHED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
URL = "https://wire.example.com/feeds/news.xml"


def parse(name: str, content_type: str | None, url: str = URL, tz: str = "Asia/Shanghai"):  # type: ignore[no-untyped-def]
    return parse_feed((DATA / name).read_bytes(), content_type, url, source="wire", timezone=tz, fetched=FETCHED)


def test_rss2_identity_links_dates_tags_and_duplicate_guids() -> None:
    feed = parse("rss2.xml", "application/rss+xml; charset=utf-8")
    assert feed.version == "rss20" and feed.ttl_seconds == 3600 and feed.duplicates == 1
    games, shanghai, talks = feed.items
    assert games.key == "id:wire-20190122-games"
    assert games.url == "https://wire.example.com/news/2019/01/22/games.html?utm_source=rss"  # relative → absolute
    assert games.published == datetime(2019, 1, 22, 7, 28, 16, tzinfo=UTC)
    assert games.tags == ("科技", "游戏") and games.author == "段倩倩"
    assert "<script" not in (games.content_html or "")  # feedparser sanitizes; normalize sanitizes again
    assert "https://wire.example.com/img/chart.png" in (games.content_html or "")
    # a GUID that is a URL is still the GUID; a date without zone is in the source's timezone
    assert shanghai.key == "id:https://wire.example.com/news/2019/01/22/shanghai.html"
    assert shanghai.published == datetime(2019, 1, 22, 9, 9, 2, tzinfo=UTC)
    # two entries share a GUID: the newer one wins, wherever it is in the document
    assert talks.title == "中美将于1月7日-8日举行经贸问题副部级磋商"


def test_naive_date_follows_the_source_timezone() -> None:
    utc = parse("rss2.xml", "application/rss+xml", tz="UTC")
    assert utc.items[1].published == datetime(2019, 1, 22, 17, 9, 2, tzinfo=UTC)


def test_atom_with_xml_base_and_html_content() -> None:
    feed = parse("atom.xml", "application/atom+xml")
    (e,) = feed.items
    assert feed.version == "atom10"
    assert e.key == "id:tag:partner.example.org,2019:hebei/yiyang"
    assert e.url == "https://partner.example.org/hebei/2019/02/22/yiyang.shtml"
    assert 'href="https://partner.example.org/hebei/more.shtml"' in (e.content_html or "")  # xml:base of the feed
    assert e.published == datetime(2019, 2, 21, 23, 37, tzinfo=UTC)
    assert e.updated == datetime(2019, 2, 22, 0, 0, tzinfo=UTC)
    assert e.tags == ("养老",) and e.author == "河北日报" and e.summary_html == "北京老人河北养老渐成潮流"


def test_rss1_rdf() -> None:
    feed = parse("rss1.rdf", "application/rdf+xml")
    (e,) = feed.items
    assert feed.version == "rss10"
    assert e.key == "id:https://rdf.example.net/a/changke.html"  # rdf:about is the identity
    assert e.published == datetime(2019, 1, 15, 1, 30, tzinfo=UTC) and e.tags == ("经济",)


def test_json_feed() -> None:
    feed = parse("feed.json", "application/feed+json")
    boc, policy = feed.items
    assert feed.version == "json1.1"
    assert boc.key == "id:jf-1" and boc.url == "https://json.example.com/finance/boc.html"
    assert boc.tags == ("金融", "人事") and boc.author == "第一财经"
    assert boc.published == datetime(2019, 1, 10, 10, 0, tzinfo=UTC)
    assert policy.url is None and policy.published == datetime(2019, 1, 11, 0, 0, tzinfo=UTC)
    assert policy.content_html == "<p>美加息迷茫，中国明年降准或超2个百分点。</p><p>分析人士认为货币政策将保持稳健。</p>"


@pytest.mark.parametrize("content_type", ["application/rss+xml; charset=gb2312", "application/rss+xml", None])
def test_gb2312_feed_is_read_as_gb18030(content_type: str | None) -> None:
    (e,) = parse("gbk.xml", content_type).items
    assert e.title == "重庆市应急系统扎实推进安全生产形势持续稳定好转_重庆频道"
    assert "镕（GB18030 才有的字）" in (e.content_html or "")


def test_header_charset_beats_a_wrong_xml_prolog() -> None:
    feed = parse("charset_mismatch.xml", "application/rss+xml; charset=gb2312")
    (e,) = feed.items
    assert e.title == "重庆市应急系统扎实推进安全生产形势持续稳定好转_重庆频道"
    assert "镕" in (e.content_html or "")


def test_a_real_feed_served_as_text_html_is_still_a_feed() -> None:
    feed = parse("rss2.xml", "text/html; charset=utf-8")
    assert feed.version == "rss20" and len(feed.items) == 3 and "NonXMLContentType" in str(feed.problem)


def test_malformed_xml_is_still_read() -> None:
    feed = parse("malformed.xml", "application/rss+xml")
    assert feed.problem is not None  # feedparser's bozo complaint is kept for the log
    assert feed.items[0].title == "成都地铁新线开通 & 沿线楼盘关注度上升"
    assert feed.items[0].key == "url:https://sc.example.com/a/metro.html"


@pytest.mark.parametrize(("data", "content_type", "message"), [
    (b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", "an HTML page"),
    (b"<html><head><title>Login</title></head><body>please log in</body></html>", "application/xml", "an HTML page"),
    (b"\x89PNG\r\n\x1a\n\0\0\0", "image/png", "not a feed"),
    (b'{"error": "rate limited"}', "application/json", "not a JSON Feed"),
    (b"{not json", "application/feed+json", "not a JSON Feed"),
    (b"", "application/rss+xml", "not a feed"),
])
def test_error_pages_and_non_feeds_are_typed(data: bytes, content_type: str, message: str) -> None:
    with pytest.raises(NotAFeed, match=message):
        parse_feed(data, content_type, URL, source="wire", timezone="UTC", fetched=FETCHED)


def test_relative_permalink_guid_is_not_resolved_so_identity_survives_a_move() -> None:
    doc = (b'<rss version="2.0"><channel><title>x</title><item><title>t</title><guid>12345</guid>'
           b'<description>&lt;img src="/i.png"&gt;</description></item></channel></rss>')
    old = parse_feed(doc, "application/rss+xml", "https://old.example.com/rss", source="w", timezone="UTC",
                     fetched=FETCHED)
    new = parse_feed(doc, "application/rss+xml", "https://new.example.com/feeds/rss", source="w", timezone="UTC",
                     fetched=FETCHED)
    assert old.items[0].key == new.items[0].key == "id:12345"
    assert old.items[0].content_html == '<img src="https://old.example.com/i.png"/>'


def test_entry_key_rules() -> None:
    assert entry_key(" g1 ", "https://x/a", "t", "d", "c") == "id:g1"
    assert entry_key(None, "HTTPS://X.example:443/a?utm_source=rss#frag", "t", "d", "c") == "url:https://x.example/a"
    a = entry_key(None, None, "t", "2019", "c")
    assert a.startswith("hash:") and a == entry_key("", " ", "t", "2019", "c") != entry_key(None, None, "t", "2019", "d")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["application/rss+xml", "text/html", "application/json", None]))
def test_any_bytes_give_items_or_not_a_feed(data: bytes, content_type: str | None) -> None:
    try:
        feed = parse_feed(data, content_type, URL, source="wire", timezone="Asia/Shanghai", fetched=FETCHED)
    except NotAFeed:
        return
    assert len({i.key for i in feed.items}) == len(feed.items)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5)), min_size=1, max_size=8))
def test_duplicate_guids_resolve_deterministically(entries: list[tuple[str, int]]) -> None:
    items = "".join(
        f"<item><title>{g}{n}-{i}</title><guid>{g}</guid><pubDate>Tue, 0{n + 1} Jan 2019 00:00:00 GMT</pubDate></item>"
        for i, (g, n) in enumerate(entries)
    )
    doc = f'<rss version="2.0"><channel><title>x</title>{items}</channel></rss>'.encode()
    once = parse_feed(doc, "application/rss+xml", URL, source="w", timezone="UTC", fetched=FETCHED)
    again = parse_feed(doc, "application/rss+xml", URL, source="w", timezone="UTC", fetched=FETCHED)
    assert once.items == again.items and len(once.items) == len({g for g, _ in entries})
    for item in once.items:
        guid = item.key.removeprefix("id:")
        newest = max(n for g, n in entries if g == guid)
        first_newest = next(i for i, (g, n) in enumerate(entries) if g == guid and n == newest)
        assert item.title == f"{guid}{newest}-{first_newest}"

"""sources/html.py: listing and article pages with CSS selectors (pure: bytes in, values out)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syndicator.config import Selectors
from syndicator.errors import NotAFeed, ParseError
from syndicator.sources.html import absolutize_html, charset_of, parse_article, parse_listing

from .conftest import DATA

FETCHED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
URL = "https://partner.example.com/house/list.html"
SEL = Selectors(item="li.news", title="a.t", link="a.t", date=".time", summary="p.lead")


def listing(data: bytes, selectors: Selectors = SEL, content_type: str | None = "text/html; charset=utf-8"):  # type: ignore[no-untyped-def]
    return parse_listing(data, content_type, URL, selectors, source="house", timezone="Asia/Shanghai",
                         fetched=FETCHED)


def test_listing_fixture() -> None:
    got = listing((DATA / "listing.html").read_bytes())
    a1, a2 = got.items
    assert a1.key == "url:https://partner.example.com/house/2019/0118/a1.html"
    assert a1.title == "北京共有产权房新政落地 首批项目开始申购——房产北京"
    assert a1.date_text == "2019-01-18 10:20"  # <time datetime> beats the visible "1月18日"
    assert a1.content_html == "北京首批共有产权房项目开始申购。" and a1.timezone == "Asia/Shanghai"
    assert a2.url == "https://partner.example.com/house/a2.html" and a2.date_text == "2019-01-19 08:05"
    assert got.skipped == ("item 4: title='a.t' matched nothing",)  # the ad; the duplicate link is dropped


def test_listing_scope_base_href_and_items_without_link() -> None:
    page = ('<html><head><base href="https://cdn.example.net/news/"></head><body>'
            '<a class="x" href="a.html">标题一</a><a class="x" href="/b.html">标题二</a>'
            '<div class="y"><h2>没有链接的快讯</h2></div></body></html>').encode()
    got = listing(page, Selectors(item="a.x", title=":scope", link=":scope"))
    assert [i.url for i in got.items] == ["https://cdn.example.net/news/a.html", "https://cdn.example.net/b.html"]
    (flash,) = listing(page, Selectors(item="div.y", title="h2", link="a")).items
    assert flash.url is None and flash.key.startswith("hash:")


def test_listing_without_matches_is_a_typed_error() -> None:
    with pytest.raises(NotAFeed, match="matched nothing"):
        listing(b"<html><body><p>maintenance</p></body></html>")


def test_gb2312_declared_in_meta_is_read_as_gb18030() -> None:
    body = parse_article((DATA / "article_a2.html").read_bytes(), "text/html", URL, "#artical_real", [".share"],
                         source="house")
    assert body == "<p>一月中旬，北京二手房成交量较上月回升，镕基价格保持平稳。</p>"


def test_article_content_minus_junk_with_absolute_links() -> None:
    body = parse_article((DATA / "article_a1.html").read_bytes(), "text/html", "https://p.example.com/h/a1.html",
                         "#artical_real", [".share", "p.ad"], source="house")
    assert "分享到微信" not in body and "广告" not in body and "track()" not in body
    assert '<img src="https://p.example.com/h/img/plan.jpg"/>' in body
    with pytest.raises(ParseError, match="matched nothing"):
        parse_article(b"<html><body>x</body></html>", "text/html", URL, "#artical_real", [], source="house")


def test_charset_of() -> None:
    assert charset_of("text/html; charset=GB2312") == "gb18030"
    assert charset_of('text/html; charset="gbk"') == "gb18030"
    assert charset_of("text/html; charset=utf-8") == "utf-8"
    assert charset_of("text/html") is None and charset_of(None) is None


def test_unknown_declared_charset_falls_back_to_detection() -> None:
    (item,) = listing('<li class="news"><a class="t" href="/x">标题</a></li>'.encode(),
                      content_type="text/html; charset=no-such-charset").items
    assert item.title == "标题"


def test_absolutize_html() -> None:
    assert absolutize_html('<a href="x.html">x</a>', "https://h.example/a/") == '<a href="https://h.example/a/x.html">x</a>'
    same = '<a href="https://o.example/">x</a> <a href="#top">t</a> <a href="mailto:a@b.c">m</a>'
    assert absolutize_html(same, "https://h.example/") == same  # nothing relative: untouched


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=30), st.sampled_from(["/a", "b.html", "", "#", "javascript:x", "//c/d"]),
                          st.text(max_size=20)), max_size=8),
       st.binary(max_size=200))
def test_any_listing_gives_unique_keys_or_a_typed_error(entries: list[tuple[str, str, str]], junk: bytes) -> None:
    from html import escape

    lis = "".join(f'<li class="news"><a class="t" href="{escape(h)}">{escape(t)}</a><span class="time">{escape(d)}'
                  f"</span></li>" for t, h, d in entries)
    try:
        got = listing(f"<ul>{lis}</ul>".encode() + junk)
    except NotAFeed:
        return
    keys = [i.key for i in got.items]
    assert len(keys) == len(set(keys)) and all(i.title for i in got.items)

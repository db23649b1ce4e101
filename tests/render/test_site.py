"""index.html, feeds.opml and article pages."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from lxml import etree

from syndicator.errors import RenderError
from syndicator.render.site import article_page_path, render_article_page, render_index, render_opml
from syndicator.types import Carrier, FeedSpec, SiteInfo, StoryEntry, Tag

from .conftest import BASE, make_entry


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.alternates: list[tuple[str, str]] = []
        self.scripts = 0
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        if tag == "script":
            self.scripts += 1
        if tag == "link" and a.get("rel") == "alternate":
            self.alternates.append((a.get("type") or "", a.get("href") or ""))


def _links(data: bytes) -> _Links:
    parser = _Links()
    parser.feed(data.decode("utf-8"))
    return parser


@pytest.fixture
def feeds(spec: FeedSpec, tag_spec: FeedSpec) -> list[FeedSpec]:
    return [tag_spec, spec, FeedSpec("tags/empty", "空 <标签>", "", (), Tag("空", "empty"))]


def test_index_lists_every_feed_with_discovery(site: SiteInfo, feeds: list[FeedSpec]) -> None:
    data = render_index(site, feeds)
    text = data.decode("utf-8")
    parsed = _links(data)
    assert parsed.lang == "zh-CN" and parsed.scripts == 0
    assert '<meta charset="utf-8">' in text
    atom = [href for kind, href in parsed.alternates if kind == "application/atom+xml"]
    assert atom == [f"{BASE}all.atom", f"{BASE}tags/empty.atom", f"{BASE}tags/shizheng.atom"]
    for path in ("all", "tags/shizheng", "tags/empty"):
        assert f"<code>{BASE}{path}.atom</code>" in text and f"<code>{BASE}{path}.rss</code>" in text
    assert "空 &lt;标签&gt;" in text  # escaped
    assert "<td>3</td>" in text and "<td>0</td>" in text
    assert "2024-05-01 16:00" in text  # newest date, in Asia/Shanghai
    assert "http://" not in text.replace(BASE, "")  # no external assets
    assert render_index(site, list(reversed(feeds))) == data  # deterministic


def test_opml(site: SiteInfo, feeds: list[FeedSpec]) -> None:
    data = render_opml(site, feeds)
    root = etree.fromstring(data)
    assert root.get("version") == "2.0"
    outlines = root.findall("body/outline")
    assert [o.get("xmlUrl") for o in outlines] == [
        f"{BASE}all.rss",
        f"{BASE}tags/empty.rss",
        f"{BASE}tags/shizheng.rss",
    ]
    assert all(o.get("type") == "rss" and (o.get("htmlUrl") or "").startswith(BASE) for o in outlines)
    assert outlines[1].get("text") == "空 <标签>"
    assert root.findtext("head/dateModified") == "Wed, 01 May 2024 08:00:00 +0000"
    assert render_opml(site, feeds) == data
    empty = etree.fromstring(render_opml(site, []))
    assert empty.find("head/dateModified") is None


def test_article_page(site: SiteInfo) -> None:
    entry: StoryEntry = make_entry(
        0,
        title="标题 <script>alert(1)</script>",
        content_html="<p>正文 <b>加粗</b></p>",
        link="https://src.example.com/a?x=1&y=2",
        also_in=(Carrier("重庆频道", "https://cq.example.org/1"), Carrier("晚报", None)),
    )
    data = render_article_page(site, entry)
    text = data.decode("utf-8")
    parsed = _links(data)
    assert parsed.scripts == 0
    assert ("application/atom+xml", f"{BASE}all.atom") in parsed.alternates
    assert "标题 &lt;script&gt;" in text
    assert "<p>正文 <b>加粗</b></p>" in text  # sanitized HTML inserted as is
    assert "2024-05-01 16:00" in text and "张三" in text
    assert '<a href="../tags/shizheng.atom">时政</a>' in text
    assert '同时刊发：<a href="https://cq.example.org/1">重庆频道</a>、晚报' in text
    assert 'href="https://src.example.com/a?x=1&amp;y=2"' in text
    assert render_article_page(site, entry) == data


def test_article_page_path() -> None:
    assert article_page_path("0123abcd") == "articles/0123abcd.html"
    for bad in ("../x", "a/b", "", "x.html"):
        with pytest.raises(RenderError):
            article_page_path(bad)

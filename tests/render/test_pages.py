"""The front page (tags with counts, subscribe URLs, latest digests) and the tag pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import html as lxml_html

from syndicator.errors import RenderError
from syndicator.render.site import DigestLink, render_index, render_tag_page, tag_page_path
from syndicator.types import FeedSpec, SiteInfo, Tag, TagSummary

from .conftest import BASE


def test_front_page_tags_counts_subscribe_and_digests(site: SiteInfo, spec: FeedSpec, tag_spec: FeedSpec) -> None:
    tags = [TagSummary("时政", "shizheng", 120, datetime(2024, 5, 2, 1, 0, tzinfo=UTC))]
    digests = [DigestLink("2024-05-02", 7), DigestLink("2024-05-01", 3)]
    data = render_index(site, [tag_spec, spec], tags=tags, digests=digests, stories=999)
    text = data.decode()
    tree = lxml_html.fromstring(text)
    assert tree.get("lang") == "zh-CN" and not tree.xpath("//script")
    assert "共 999 条新闻" in text
    row = tree.get_element_by_id("feed-tags-shizheng")
    cells = [c.text_content().strip() for c in row.findall("td")]
    assert cells[0] == "时政" and cells[1] == "120" and cells[2] == "2024-05-02 09:00"  # site timezone
    assert row.xpath(".//a/@href")[0] == "tags/shizheng.html"
    assert tree.get_element_by_id("feed-all").findall("td")[1].text_content() == "999"
    codes = tree.xpath("//code/text()")
    assert f"{BASE}all.atom" in codes and f"{BASE}digest.rss" in codes and f"{BASE}tags/shizheng.rss" in codes
    assert tree.xpath("//section[@id='digests']//a/@href") == ["digest/2024-05-02.html", "digest/2024-05-01.html",
                                                               "digest/index.html"]
    alternates = tree.xpath("//link[@rel='alternate']/@href")
    assert alternates[:4] == [f"{BASE}all.atom", f"{BASE}all.rss", f"{BASE}digest.atom", f"{BASE}digest.rss"]
    # without digests: no digest section and no digest feed
    plain = render_index(site, [tag_spec, spec], tags=tags)
    assert b"digest" not in plain


def test_tag_page(site: SiteInfo, tag_spec: FeedSpec) -> None:
    data = render_tag_page(site, tag_spec, TagSummary("时政", "shizheng", 42, None))
    tree = lxml_html.fromstring(data.decode())
    assert tree.findtext(".//h1") == "时政" and "共 42 条新闻" in data.decode()
    items = tree.xpath("//ul[@class='stories']/li")
    assert len(items) == 3
    first = items[0].xpath(".//a/@href")
    assert first[0] == "../articles/0000000000000000.html"
    assert "../digest/2024-05-01.html" in first  # its day's digest, in the site timezone
    assert not any(h.startswith(BASE + "articles/") for h in first)  # no "原文" link back to our own page
    assert tree.xpath("//link[@rel='alternate']/@href") == [f"{BASE}tags/shizheng.atom", f"{BASE}tags/shizheng.rss"]
    no_digest = render_tag_page(site, tag_spec, digest_links=False)
    assert b"../digest/" not in no_digest
    with pytest.raises(RenderError):
        render_tag_page(site, FeedSpec("all", "全部", "", ()))
    with pytest.raises(RenderError):
        tag_page_path("../x")
    assert tag_page_path("shizheng") == "tags/shizheng.html"
    assert Tag("时政", "shizheng") == tag_spec.tag

"""Property tests of the whole path: any input → normalize → limits → every rendered feed and page.

For any text in any front-matter field and body (or any remote item's fields), normalization returns an
article or a typed error, never another exception; for any such article, every rendered feed parses with
feedparser ``bozo == 0``, holds unique entry ids and no executable markup, and so does its page.
"""

from __future__ import annotations

from datetime import UTC, datetime

import feedparser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syndicator import limits
from syndicator.config import LimitSettings, NormalizeSettings, TagSettings
from syndicator.errors import ParseError
from syndicator.normalize import normalize_item
from syndicator.render.feeds import render_feed
from syndicator.render.site import render_article_page
from syndicator.types import Article, Carrier, FeedSpec, RawItem, SiteInfo, StoryEntry, Tag

from .markup import feed_problems, page_problems
from .test_hostile import HOSTILE_HTML

RULES = NormalizeSettings()
TAGS = TagSettings(rules={"安全生产": ["安全生产"]})
LIMITS = LimitSettings(max_body_bytes=5_000, max_title_chars=80)
NOW = datetime(2024, 6, 1, tzinfo=UTC)
SITE = SiteInfo(title="站点<b>", base_url="https://news.example.org/", language="zh-CN", timezone="Asia/Shanghai")
PIECES = st.sampled_from([*HOSTILE_HTML, "\x00", "\x0b", "\ud800", "\udfff", "\ufffe", "\uffff", "\u2028", "\r",
                          "]]>", "&amp;", "&#0;", "&#xd800;", "<![CDATA[", "安全生产", "---", "\n", "：", '"', "'"])
TEXT = st.lists(st.one_of(st.text(max_size=30), PIECES), max_size=10).map("".join)
DATES = st.one_of(st.sampled_from(["2019-02-25- 06:24", "2090-01-01", "1900-01-01 00:00", "0001-01-01", "", "x"]),
                  TEXT)
URLS = st.one_of(st.none(), st.sampled_from(["javascript:alert(1)", " JAVASCRIPT:x", "java\tscript:x",
                                             "data:text/html,<script>", "vbscript:x", "https://ok.example/a?b=<c>",
                                             "//cdn.example/x", "/relative", "http://[::1", "ftp://x"]), TEXT)


def yaml_scalar(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@st.composite
def raw_items(draw: st.DrawFn) -> RawItem:
    if draw(st.booleans()):
        fields = {k: draw(TEXT) for k in ("title", "author", "tags", "categories")}
        head = "".join(f"{k}: {yaml_scalar(v) if draw(st.booleans()) else v}\n" for k, v in fields.items())
        text = f"---\n{head}date: {draw(DATES)}\n---\n{draw(TEXT)}\n<!-- more -->\n{draw(TEXT)}\n"
        data = text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else text.encode("utf-8", "replace")
        return RawItem(source="a", key="k.md", timezone="Asia/Shanghai", data=data, path="k.md",
                       mtime=datetime(2019, 3, 1, tzinfo=UTC))
    return RawItem(source="r", key=draw(TEXT) or "k", timezone="UTC", url=draw(URLS), title=draw(TEXT),
                   content_html=draw(TEXT), author=draw(TEXT), published=draw(DATES), channel=draw(TEXT),
                   tags=(draw(TEXT),))


def entry(a: Article, n: int, link: str | None, carrier: str | None) -> StoryEntry:
    return StoryEntry(story_id=f"{a.id}{n}", title=a.title, link=link or f"{SITE.base_url}articles/{a.id}.html",
                      published=a.published, updated=a.updated or a.published, author=a.author, summary=a.summary,
                      content_html=a.content_html, tags=tuple(Tag(t, f"t{i}") for i, t in enumerate(a.tags)),
                      channel=a.channel, also_in=(Carrier(a.channel or "x", carrier),))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_items(), min_size=1, max_size=3), URLS, URLS)
def test_any_input_gives_an_article_or_a_parse_error_and_safe_valid_feeds(
    raws: list[RawItem], link: str | None, carrier: str | None
) -> None:
    entries = []
    for n, raw in enumerate(raws):
        try:
            article = normalize_item(raw, RULES, TAGS)
        except ParseError as exc:
            assert not exc.reason.startswith("internal error"), exc.reason
            continue
        article, _ = limits.bound(article, LIMITS, now=NOW, fallback=raw.mtime)
        assert len(article.content_html.encode()) <= LIMITS.max_body_bytes
        assert article.published.year < 2090  # limits: never far in the future
        entries.append(entry(article, n, link, carrier))
        entries.append(entry(article, n, link, carrier))  # the same story twice: one entry in the feed
    if not entries:
        return
    for fmt in ("atom", "rss"):
        data = render_feed(FeedSpec("all", "全部", "", tuple(entries)), SITE, fmt)  # type: ignore[arg-type]
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        ids = [e.id for e in parsed.entries]
        assert len(ids) == len(set(ids)) == len({e.story_id for e in entries})
        assert not feed_problems(data), feed_problems(data)
    for e in entries[::2]:
        page = render_article_page(SITE, e)
        assert not page_problems(page), page_problems(page)

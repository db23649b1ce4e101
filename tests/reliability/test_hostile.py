"""Hostile and broken input: nothing executable survives, feeds stay well formed, sizes stay bounded.

Each case goes through the real pipeline (files in an archive folder → ``syndicator sync`` → SQLite →
feeds and pages on disk), or through normalize → render for items shaped like a remote feed's entries.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from conftest import write_config
from lxml import etree

from syndicator.cli import main
from syndicator.config import Settings
from syndicator.normalize import normalize_item
from syndicator.render.feeds import render_feed
from syndicator.render.site import render_article_page
from syndicator.types import Carrier, FeedSpec, RawItem, SiteInfo, StoryEntry

from .markup import feed_problems, page_problems

HOSTILE_HTML = [
    "<script>alert(1)</script>",
    "<style>body{display:none}</style>",
    '<iframe src="https://evil.example/"></iframe>',
    '<p onclick="alert(1)" onmouseover="alert(2)">点我</p>',
    '<a href="javascript:alert(1)">链接</a>',
    '<a href="JaVaScRiPt&#58;alert(1)">编码的链接</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">数据链接</a>',
    '<img src="x" onerror="alert(1)">',
    '<img src="javascript:alert(1)">',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<img src="https://img.example/a.png" srcset="javascript:alert(1) 2x, data:image/png;base64,AA 3x" onload="x()">',
    '<svg><script>alert(1)</script><circle onload="alert(1)"/></svg>',
    '<svg><a xlink:href="javascript:alert(1)"><text>svg</text></a></svg>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/x.swf">',
    '<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">b</button></form>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    '<div style="background:url(javascript:alert(1))">样式</div>',
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<<img src="https://img.example/b.png" onerror=alert(1)//',
    "<!--<img src=x onerror=alert(1)>-->",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
]
TEXT = "重庆市应急系统扎实推进安全生产形势持续稳定好转，全市应急系统以有效防范和坚决遏制重特大事故为重点。"
SITE = SiteInfo(title="测试", base_url="https://news.example.org/", language="zh-CN", timezone="Asia/Shanghai")


def post(title: str, body: str, date: str = "2019-02-25- 06:24", extra: str = "") -> str:
    return f"---\ntitle: {title}\nauthor: wetech\ndate: {date}\n{extra}tags: \ncategories: \n---\n{body}\n"


def sync(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), "sync", "--no-progress", *args],
                                catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def articles(config: Path) -> list[dict[str, object]]:
    result = CliRunner().invoke(main, ["--config", str(config), "articles", "--json"], catch_exceptions=False)
    return [json.loads(line) for line in result.stdout.splitlines()]


def feed_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.suffix in (".atom", ".rss"))


def assert_clean_outputs(out: Path) -> None:
    feeds = feed_files(out)
    assert feeds
    for path in feeds:
        data = path.read_bytes()
        etree.fromstring(data)  # well-formed XML, or this raises
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, (path.name, parsed.get("bozo_exception"))
        assert not feed_problems(data), (path.name, feed_problems(data)[:5])
    for path in sorted(out.rglob("*.html")):
        assert not page_problems(path.read_bytes()), (path.name, page_problems(path.read_bytes())[:5])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "archive").mkdir()
    return tmp_path


def test_hostile_markup_in_archive_posts_never_reaches_feeds_or_pages(folder: Path) -> None:
    arch = folder / "archive"
    for n, bad in enumerate(HOSTILE_HTML):
        body = f"{TEXT}{n}\n{bad}\n{TEXT}"
        (arch / f"{n:02d}.md").write_text(post(f"标题{n}<script>alert({n})</script>", body), encoding="utf-8")
    config = write_config(folder, arch)
    code, out, err = sync(config)
    assert code == 0, err
    assert f"new={len(HOSTILE_HTML)}" in out
    digests = sorted(p.name for p in (folder / "feeds" / "digest").glob("*.html"))
    assert "2019-02-25.html" in digests and (folder / "feeds" / "digest.atom").exists()  # checked below too
    assert_clean_outputs(folder / "feeds")


def network_item(n: int, html: str, *, title: str = "标题", link: str | None = None) -> RawItem:
    return RawItem(source="remote", key=f"item-{n}", timezone="UTC", url=link, title=title,
                   content_html=html, published="2024-05-01T08:00:00Z")


def entry_for(n: int, raw: RawItem) -> StoryEntry:
    settings = Settings()
    a = normalize_item(raw, settings.normalize, settings.tags)
    return StoryEntry(story_id=a.id, title=a.title, link=a.link or f"{SITE.base_url}articles/{a.id}.html",
                      published=a.published, updated=a.updated or a.published, author=a.author, summary=a.summary,
                      content_html=a.content_html, tags=(), channel=a.channel,
                      also_in=(Carrier("另一频道", "javascript:alert(1)"), Carrier("数据", "data:text/html,x")))


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_hostile_markup_in_feed_items_never_reaches_feeds_or_pages(fmt: str) -> None:
    entries = [
        entry_for(n, network_item(n, f"<p>{TEXT}</p>{bad}<p>{TEXT}{n}</p>", title=f"<b>标题</b>{n}<script>x</script>",
                                  link="javascript:alert(1)" if n % 2 else "https://news.example.org/a"))
        for n, bad in enumerate(HOSTILE_HTML)
    ]
    data = render_feed(FeedSpec("all", "全部", "", tuple(entries)), SITE, fmt)  # type: ignore[arg-type]
    assert feedparser.parse(data).bozo == 0
    assert not feed_problems(data), feed_problems(data)[:5]
    for e in entries:
        page = render_article_page(SITE, e)
        assert not page_problems(page), page_problems(page)[:5]


def test_unsafe_link_schemes_are_dropped_from_feeds_and_pages() -> None:
    entry = StoryEntry(story_id="s1", title="t", link=" javascript:alert(1)", published=datetime(2024, 1, 1, tzinfo=UTC),
                       updated=datetime(2024, 1, 1, tzinfo=UTC), author=None, summary="s", content_html="<p>x</p>",
                       tags=(), also_in=(Carrier("频道", "vbscript:msgbox(1)"), Carrier("好", "https://ok.example/")))
    for fmt in ("atom", "rss"):
        data = render_feed(FeedSpec("all", "全部", "", (entry,)), SITE, fmt)  # type: ignore[arg-type]
        assert b"javascript" not in data.lower() and b"vbscript" not in data.lower()
        assert b"https://ok.example/" in data
    page = render_article_page(SITE, entry)
    assert b"javascript" not in page.lower() and b"vbscript" not in page.lower()


def han(rng: random.Random, n: int) -> str:
    chars = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定"
    return "".join(rng.choice(chars) for _ in range(n))


def test_broken_characters_and_huge_input_keep_feeds_well_formed_and_bounded(folder: Path) -> None:
    arch = folder / "archive"
    rng = random.Random(3)
    # (a NUL byte, or more than 5 % control bytes, makes a file binary: see test_bad_files_are_skipped)
    controls = "".join(chr(c) for c in range(1, 32) if c not in (9, 10, 13)) + "\x7f\x85\u2028\ufeff\u200b"
    (arch / "controls.md").write_bytes(post(f"控制字符{controls}标题", f"{TEXT * 20}{controls}\n{TEXT}控制").encode())
    (arch / "nonchars.md").write_bytes(post("非字符\ufffe\uffff标题", f"{TEXT}\ufffe\uffff\U0010ffff").encode())
    # a lone surrogate cannot be valid UTF-8: here its CESU-8 bytes, as a broken encoder writes them
    (arch / "surrogate.md").write_bytes(post("代理", TEXT + "半个").encode() + b"\xed\xa0\x80\xed\xbf\xbf end\n")
    (arch / "long-title.md").write_text(post("长" * 10_000, TEXT + "长标题"), encoding="utf-8")
    big = "\n".join(han(rng, 300) + "。" for _ in range(5_600))  # ≈ 5 MB of distinct paragraphs
    (arch / "big-body.md").write_text(post("超长正文", big), encoding="utf-8")
    (arch / "deep.md").write_text(post("深层嵌套", "<div>" * 50_000 + TEXT + "</div>" * 50_000), encoding="utf-8")
    config = write_config(folder, arch)
    code, out, err = sync(config)
    assert code == 0, err
    assert "new=6" in out
    assert "body cut to 200000 bytes" in err and "skipped:" not in err
    rows = {r["source_path"]: r for r in articles(config)}
    assert len(rows) == 6
    for row in rows.values():
        assert len(str(row["title"])) <= 300
        assert len(str(row["content_html"]).encode()) <= 200_000
        for field in ("title", "content_html", "content_text", "summary"):
            assert not any(c in str(row[field]) for c in "\x00\x01\x08\x0b\x1f\ufffe\uffff"), (row["source_path"], field)
    assert str(rows["big-body.md"]["content_html"]).endswith("<p>（正文过长，以下从略）</p>")
    assert_clean_outputs(folder / "feeds")
    for path in feed_files(folder / "feeds"):
        assert path.stat().st_size < 50 * 200_000 * 2  # max_entries × max_body_bytes, escaped


def test_a_file_over_the_size_limit_is_rejected_with_a_reason(folder: Path) -> None:
    arch = folder / "archive"
    (arch / "ok.md").write_text(post("正常", TEXT), encoding="utf-8")
    (arch / "huge.md").write_text(post("太大", han(random.Random(1), 700_000)), encoding="utf-8")
    config = write_config(folder, arch, limits={"max_file_bytes": 1_000_000})
    code, out, err = sync(config)
    assert code == 1
    assert "new=1" in out and "skipped=1" in out
    assert "huge.md: skipped: file too large" in err
    assert [r["title"] for r in articles(config)] == ["正常"]


def test_a_lone_surrogate_in_a_remote_items_id_is_storable() -> None:
    from syndicator.sources.feed import entry_key
    from syndicator.types import article_id

    for key in (entry_key("guid-\ud800", None, "", "", ""), entry_key(None, "https://x.example/\udfff", "", "", ""),
                entry_key(None, None, "标题\ud800", "", "")):
        key.encode("utf-8")  # the database driver encodes it like this
    assert entry_key("guid-\ud800", None, "", "", "") == "id:guid-\\ud800"
    assert len(article_id("remote", "\ud800")) == 16



def test_titles_are_plain_text_escaped_in_feeds_and_pages() -> None:
    import re

    entry = StoryEntry(story_id="s1", title="<b>标题</b><script>alert(1)</script> a < b", link="https://x.example/",
                       published=datetime(2024, 1, 1, tzinfo=UTC), updated=datetime(2024, 1, 1, tzinfo=UTC),
                       author=None, summary="s", content_html="<p>x</p>", tags=())
    for fmt in ("atom", "rss"):
        data = render_feed(FeedSpec("all", "全部", "", (entry,)), SITE, fmt)  # type: ignore[arg-type]
        assert b"<script>" not in data and b"&lt;script&gt;" in data  # text, escaped once
        assert feedparser.parse(data).entries[0].title == "<b>标题</b><script>alert(1)</script> a < b"
    page = render_article_page(SITE, entry).decode()
    assert "<script>" not in page and re.search(r"<h1>&lt;b&gt;标题&lt;/b&gt;&lt;script&gt;", page)

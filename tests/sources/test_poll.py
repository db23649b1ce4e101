"""Remote sources end to end: a real server on 127.0.0.1 → sync → the database (SQLite and PostgreSQL).

Each test asserts what is stored and what the source state says afterwards.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, SEED_FILE

from syndicator import clock
from syndicator.config import Settings, from_mapping
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository, SourceStatus
from syndicator.sync import sync

from .conftest import DATA, Reply, Request, Web, gzip_bomb

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RSS = "application/rss+xml; charset=utf-8"


@pytest.fixture(autouse=True)
def fixed_clock() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.set_now(None)


def settings_for(tmp_path: Path, db_url: str, sources: list[dict[str, Any]], **extra: Any) -> Settings:
    shipped = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    data = {
        "site": shipped["site"], "tags": shipped["tags"], "database": {"url": db_url},
        "output": {"dir": str(tmp_path / "feeds")},
        "http": {"min_interval": "0s", "timeout": 5, "user_agent": "syndicator-test/1", **extra.pop("http", {})},
        "allow_private_networks": True,
        "sources": [{"timezone": "Asia/Shanghai", "every": "15m", **s} for s in sources],
        **extra,
    }
    return from_mapping(data, base=tmp_path)


@pytest.fixture
def repo(db_url: str) -> Repository:
    return Repository(open_database(db_url))


def status(repo: Repository, name: str) -> SourceStatus:
    return next(s for s in repo.source_status() if s.name == name)


def titles(repo: Repository) -> list[str]:
    return sorted(str(a["title"]) for a in repo.iter_articles())


def feed(tmp_path: Path, db_url: str, web: Web, path: str = "/rss", **src: Any) -> Settings:
    return settings_for(tmp_path, db_url, [{"name": "wire", "type": "feed", "url": web.url(path), **src}])


# -- conditional GET --------------------------------------------------------------------------------------

def test_200_with_etag_then_304_then_a_changed_feed(tmp_path: Path, db_url: str, repo: Repository, web: Web) -> None:
    body = [(DATA / "rss2.xml").read_bytes(), '"v1"']

    def handler(req: Request) -> Reply:
        if req.headers.get("If-None-Match") == body[1]:
            return Reply(304, {"ETag": body[1]})
        return Reply(200, {"Content-Type": RSS, "ETag": body[1]}, body[0])

    web.route("/rss", handler)
    s = feed(tmp_path, db_url, web)
    report, _ = sync(s, repo, render=False)
    (sr,) = report.sources
    assert (sr.new, sr.errors) == (3, [])
    st = status(repo, "wire")
    assert st.etag == '"v1"' and st.articles == 3 and st.last_status == 200 and st.consecutive_failures == 0
    assert st.next_due == NOW + timedelta(hours=1)  # <ttl>60</ttl> lengthens the 15m interval
    assert "257款游戏版号面世：腾讯网易缺席，仅有一款为棋牌类" in titles(repo)

    report, _ = sync(s, repo, render=False)
    assert report.summary().startswith("sources=1 new=0 updated=0 duplicates=0 unchanged=0")
    assert web.requests("/rss")[1].headers["If-None-Match"] == '"v1"'
    st = status(repo, "wire")
    assert st.last_status == 304 and st.last_success == NOW and st.articles == 3
    assert st.next_due == NOW + timedelta(hours=1)  # the <ttl> is remembered across 304s

    body[:] = [body[0].replace("冰封的河流逐步解冻".encode(), "河流解冻".encode()), '"v2"']
    report, _ = sync(s, repo, render=False)
    (sr,) = report.sources
    assert (sr.new, sr.updated, sr.unchanged) == (0, 1, 2)  # two items with unchanged raw fields skipped early
    assert status(repo, "wire").etag == '"v2"'


def test_without_validators_unchanged_items_are_not_normalized_again(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    web.file("/rss", "rss2.xml", RSS)
    s = feed(tmp_path, db_url, web)
    sync(s, repo, render=False)
    report, _ = sync(s, repo, render=False)
    (sr,) = report.sources
    assert (sr.new, sr.updated, sr.unchanged) == (0, 0, 3)
    assert "If-None-Match" not in web.requests("/rss")[1].headers


def test_cache_control_max_age_only_lengthens_the_interval(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    data = (DATA / "atom.xml").read_bytes()
    web.route("/long", Reply(200, {"Content-Type": "application/atom+xml", "Cache-Control": "max-age=7200"}, data))
    web.route("/short", Reply(200, {"Content-Type": "application/atom+xml", "Cache-Control": "max-age=60"}, data))
    s = settings_for(tmp_path, db_url, [
        {"name": "long", "type": "feed", "url": web.url("/long")},
        {"name": "short", "type": "feed", "url": web.url("/short")},
    ])
    sync(s, repo, render=False)
    assert status(repo, "long").next_due == NOW + timedelta(hours=2)
    assert status(repo, "short").next_due == NOW + timedelta(minutes=15)


# -- every format, charsets, broken XML ---------------------------------------------------------------------

def test_every_format_is_stored_with_tags(tmp_path: Path, db_url: str, repo: Repository, web: Web) -> None:
    served = [("rss2", "rss2.xml", RSS), ("atom", "atom.xml", "application/atom+xml"),
              ("rdf", "rss1.rdf", "application/rdf+xml"), ("json", "feed.json", "application/feed+json"),
              ("gbk", "gbk.xml", "application/rss+xml; charset=gb2312"),
              ("mismatch", "charset_mismatch.xml", "text/xml; charset=gb2312"),
              ("broken", "malformed.xml", "application/rss+xml")]
    for name, file, ctype in served:
        web.file(f"/{name}", file, ctype)
    s = settings_for(tmp_path, db_url, [{"name": n, "type": "feed", "url": web.url(f"/{n}")} for n, _, _ in served])
    report, _ = sync(s, repo, render=False)
    assert report.errors == 0, [e for r in report.sources for e in r.errors]
    counts = {st.name: st.articles for st in repo.source_status()}
    assert counts == {"rss2": 3, "atom": 1, "rdf": 1, "json": 2, "gbk": 1, "mismatch": 1, "broken": 2}
    rows = {str(a["title"]): a for a in repo.iter_articles()}
    gbk = rows["重庆市应急系统扎实推进安全生产形势持续稳定好转"]
    assert gbk["channel"] == "重庆频道" and "镕" in str(gbk["content_text"])
    assert "安全生产" in gbk["tags"]  # the config's tag rules apply to feed items too
    games = rows["257款游戏版号面世：腾讯网易缺席，仅有一款为棋牌类"]
    assert {"科技", "游戏"} <= set(games["tags"])  # feed categories become tags
    assert games["link"] == web.url("/news/2019/01/22/games.html?utm_source=rss")  # relative to the document
    assert "alert" not in str(games["content_html"])
    assert rows["成都地铁新线开通 & 沿线楼盘关注度上升"]["published"] == "2019-01-26T01:00:00+00:00"


def test_html_where_a_feed_was_expected_is_an_error_that_backs_off(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    web.route("/rss", Reply(200, {"Content-Type": "text/html"}, b"<html><body>Service unavailable</body></html>"))
    report, _ = sync(feed(tmp_path, db_url, web), repo, render=False)
    assert report.errors == 1 and "an HTML page where a feed was expected" in report.sources[0].errors[0]
    st = status(repo, "wire")
    assert st.consecutive_failures == 1 and st.next_due == NOW + timedelta(minutes=30) and st.articles == 0


# -- server behaviours ----------------------------------------------------------------------------------

def test_301_three_times_moves_the_source_and_a_302_never_does(
    tmp_path: Path, db_url: str, repo: Repository, web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    web.route("/old", Reply(301, {"Location": "/new"}))
    web.route("/tmp", Reply(302, {"Location": "/new"}))
    web.file("/new", "atom.xml", "application/atom+xml")
    s = settings_for(tmp_path, db_url, [{"name": "moved", "type": "feed", "url": web.url("/old")},
                                        {"name": "temp", "type": "feed", "url": web.url("/tmp")}])
    for n in (1, 2):
        sync(s, repo, render=False)
        assert status(repo, "moved").current_url is None
        assert repo.fetch_state("moved").redirect_count == n
    sync(s, repo, render=False)
    assert status(repo, "moved").current_url == web.url("/new")
    assert "moved permanently" in caplog.text
    sync(s, repo, render=False)
    assert len(web.requests("/old")) == 3  # the fourth poll went straight to the new URL
    assert status(repo, "temp").current_url is None and len(web.requests("/tmp")) == 4
    assert status(repo, "moved").articles == 1 and status(repo, "temp").articles == 1


def test_a_redirect_streak_is_reset_by_a_poll_without_it(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    web.file("/new", "atom.xml", "application/atom+xml")
    atom = (DATA / "atom.xml").read_bytes()
    web.route("/old", lambda req: Reply(301, {"Location": "/new"}) if req.count != 2 else
              Reply(200, {"Content-Type": "application/atom+xml"}, atom))
    s = feed(tmp_path, db_url, web, "/old")
    for _ in range(4):
        sync(s, repo, render=False)
    assert status(repo, "wire").current_url is None  # 301, 200, 301, 301: never three in a row
    sync(s, repo, render=False)
    assert status(repo, "wire").current_url == web.url("/new")


def test_410_disables_the_source_until_its_url_changes(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    web.route("/gone", Reply(410))
    s = feed(tmp_path, db_url, web, "/gone")
    report, _ = sync(s, repo, render=False)
    assert report.errors == 1
    st = status(repo, "wire")
    assert st.disabled_reason is not None and "410 Gone" in st.disabled_reason and st.last_status == 410
    report, _ = sync(s, repo, render=False)
    assert report.errors == 0 and report.sources[0].disabled == st.disabled_reason
    assert len(web.requests("/gone")) == 1 and status(repo, "wire").consecutive_failures == 1
    web.file("/rss", "rss2.xml", RSS)
    sync(feed(tmp_path, db_url, web, "/rss"), repo, render=False)
    st = status(repo, "wire")
    assert st.disabled_reason is None and st.articles == 3 and st.consecutive_failures == 0


def test_429_honours_retry_after(tmp_path: Path, db_url: str, repo: Repository, web: Web) -> None:
    web.route("/rss", Reply(429, {"Retry-After": "7200"}))
    report, _ = sync(feed(tmp_path, db_url, web), repo, render=False)
    assert "HTTP 429" in report.sources[0].errors[0]
    st = status(repo, "wire")
    assert st.next_due == NOW + timedelta(hours=2) and st.consecutive_failures == 1 and st.last_status == 429
    web.route("/rss", Reply(503, {"Retry-After": "Thu, 01 Jan 2099 00:00:00 GMT"}))
    capped = settings_for(tmp_path, db_url, [{"name": "wire", "type": "feed", "url": web.url("/rss")}],
                          http={"max_retry_after": "6h"})
    sync(capped, repo, render=False)
    assert status(repo, "wire").next_due == NOW + timedelta(hours=6)  # an HTTP date, capped


def test_500_then_200(tmp_path: Path, db_url: str, repo: Repository, web: Web) -> None:
    rss = (DATA / "rss2.xml").read_bytes()
    web.route("/rss", lambda req: Reply(500, {}, b"boom") if req.count == 1 else Reply(200, {"Content-Type": RSS}, rss))
    s = feed(tmp_path, db_url, web)
    report, _ = sync(s, repo, render=False)
    st = status(repo, "wire")
    assert report.errors == 1 and "HTTP 500" in str(st.last_error)
    assert st.consecutive_failures == 1 and st.next_due == NOW + timedelta(minutes=30) and st.articles == 0
    report, _ = sync(s, repo, render=False)
    st = status(repo, "wire")
    assert report.errors == 0 and st.consecutive_failures == 0 and st.articles == 3 and st.last_success == NOW


def test_consecutive_failures_back_off_exponentially_up_to_a_day(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    web.route("/rss", Reply(500))
    s = feed(tmp_path, db_url, web, every="1h")
    dues = []
    for _ in range(7):
        sync(s, repo, render=False)
        due = status(repo, "wire").next_due
        assert due is not None
        dues.append(due - NOW)
    assert dues == [timedelta(hours=h) for h in (2, 4, 8, 16, 24, 24, 24)]


def test_slow_drip_gzip_bomb_and_redirect_loop_are_recorded_errors(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    web.route("/drip", Reply(200, {"Content-Type": RSS}, itertools.repeat(b" ", 30), pause=1.0))
    web.route("/bomb", Reply(200, {"Content-Type": RSS, "Content-Encoding": "gzip"}, gzip_bomb(64 * 1024 * 1024)))
    web.route("/loop1", Reply(301, {"Location": "/loop2"}))
    web.route("/loop2", Reply(301, {"Location": "/loop1"}))
    web.file("/ok", "atom.xml", "application/atom+xml")
    s = settings_for(tmp_path, db_url, [
        {"name": "drip", "type": "feed", "url": web.url("/drip"), "timeout": 2},
        {"name": "bomb", "type": "feed", "url": web.url("/bomb"), "max_bytes": 1048576},
        {"name": "loop", "type": "feed", "url": web.url("/loop1")},
        {"name": "ok", "type": "feed", "url": web.url("/ok")},
    ])
    report, _ = sync(s, repo, render=False)
    assert report.errors == 3  # one bad source never stops the others
    assert "deadline of 2s passed" in str(status(repo, "drip").last_error)
    assert "cap of 1048576 bytes" in str(status(repo, "bomb").last_error)
    assert "redirect loop" in str(status(repo, "loop").last_error)
    assert status(repo, "ok").articles == 1
    assert all(status(repo, n).consecutive_failures == 1 for n in ("drip", "bomb", "loop"))


def test_guard_on_refuses_a_redirect_to_a_private_address(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    web.route("/rss", Reply(302, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    web.route("/local", Reply(301, {"Location": f"http://127.0.0.2:{web.port}/x"}))
    s = settings_for(tmp_path, db_url, [
        {"name": "meta", "type": "feed", "url": web.url("/rss"), "allow_private_networks": False},
        {"name": "loop", "type": "feed", "url": web.url("/local"), "allow_private_networks": False},
    ], allow_private_networks=False, http={"allow_networks": ["127.0.0.1/32"]})
    report, _ = sync(s, repo, render=False)
    assert report.errors == 2
    assert "refused 169.254.169.254" in str(status(repo, "meta").last_error)
    assert "refused 127.0.0.2" in str(status(repo, "loop").last_error)  # loopback, not in allow_networks
    off = settings_for(tmp_path, db_url, [{"name": "plain", "type": "feed", "url": web.url("/rss")}],
                       allow_private_networks=False)
    sync(off, repo, render=False)
    assert "private, loopback" in str(status(repo, "plain").last_error)
    assert len(web.requests("/rss")) == 1  # the guard-off source never reached the server


# -- html sources --------------------------------------------------------------------------------------

def html_source(web: Web, **extra: Any) -> dict[str, Any]:
    return {
        "name": "house", "type": "html", "url": web.url("/house/list.html"),
        "selectors": {"item": "li.news", "title": "a.t", "link": "a.t", "date": ".time", "summary": "p.lead",
                      "content": "#artical_real", "remove": [".share", ".ad"]},
        **extra,
    }


def serve_house(web: Web) -> None:
    web.file("/house/list.html", "listing.html", "text/html; charset=utf-8")
    web.file("/house/2019/0118/a1.html", "article_a1.html", "text/html")
    web.file("/house/a2.html", "article_a2.html", "text/html")  # charset only in its <meta>


def test_html_listing_and_article_pages(tmp_path: Path, db_url: str, repo: Repository, web: Web) -> None:
    serve_house(web)
    s = settings_for(tmp_path, db_url, [html_source(web)])
    report, _ = sync(s, repo, render=False)
    (sr,) = report.sources
    assert (sr.new, sr.skipped, sr.errors) == (2, 1, [])  # the ad <li> has no title: counted, not an error
    rows = {str(a["title"]): a for a in repo.iter_articles()}
    a1 = rows["北京共有产权房新政落地 首批项目开始申购"]
    assert a1["channel"] == "房产北京"  # the title suffix rule, as for archive posts
    assert a1["original_title"] is None or "共有产权房" in str(a1["original_title"])
    assert a1["published"] == "2019-01-18T02:20:00+00:00"
    assert a1["link"] == web.url("/house/2019/0118/a1.html")
    text = str(a1["content_text"])
    assert "首批共有产权房项目开始网上申购" in text
    assert "分享到微信" not in text and "广告" not in text and "track" not in text
    assert web.url("/house/2019/0118/img/plan.jpg") in str(a1["content_html"])
    a2 = rows["北京二手房成交量回升"]
    assert "镕基价格保持平稳" in str(a2["content_text"]) and a2["published"] == "2019-01-19T00:05:00+00:00"
    assert len(web.requests("/house/2019/0118/a1.html")) == 1

    report, _ = sync(s, repo, render=False)
    (sr,) = report.sources
    assert (sr.new, sr.updated, sr.unchanged) == (0, 0, 2)
    assert len(web.requests("/house/list.html")) == 2
    assert len(web.requests("/house/2019/0118/a1.html")) == 1  # stored article pages are not fetched again
    assert len(web.requests("/house/a2.html")) == 1


def serve_pages(web: Web, n: int, delay: float = 0.0) -> None:
    items = "".join(f'<li class="news"><a class="t" href="/p/{k}.html">新闻标题第{k}条</a></li>' for k in range(n))
    web.route("/house/list.html", Reply(200, {"Content-Type": "text/html; charset=utf-8"},
                                        f"<ul>{items}</ul>".encode()))
    for k in range(n):
        web.route(f"/p/{k}.html", Reply(200, {"Content-Type": "text/html; charset=utf-8"},
                                        f'<div id="artical_real"><p>第{k}条新闻的正文内容。</p></div>'.encode(),
                                        delay=delay))


def test_html_politeness_min_interval_per_host(tmp_path: Path, db_url: str, repo: Repository, web: Web) -> None:
    serve_pages(web, 5)
    s = settings_for(tmp_path, db_url, [html_source(web, min_interval="0.3s", max_connections=3)])
    report, _ = sync(s, repo, render=False)
    assert report.sources[0].new == 5
    starts = sorted(r.started for r in web.seen)  # the listing and 5 pages: all on one host
    # the limiter spaces the starts by 0.3s; the server sees them with scheduling jitter on a busy machine
    assert starts[-1] - starts[0] >= 5 * 0.3 - 0.05, starts
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(starts)), starts


@pytest.mark.parametrize(("max_connections", "most"), [(1, 1), (3, 3)])
def test_html_politeness_concurrency_per_host(
    tmp_path: Path, db_url: str, repo: Repository, web: Web, max_connections: int, most: int
) -> None:
    serve_pages(web, 6, delay=0.4)
    s = settings_for(tmp_path, db_url, [html_source(web, min_interval="0s", max_connections=max_connections)])
    assert sync(s, repo, render=False)[0].sources[0].new == 6
    assert web.max_active <= most
    if max_connections == 1:
        assert web.max_active == 1
    else:
        assert web.max_active >= 2  # the pages really are fetched in parallel when allowed


def test_html_content_selector_that_matches_nothing_is_an_item_error_retried_next_time(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    serve_house(web)
    web.route("/house/a2.html", Reply(200, {"Content-Type": "text/html"}, b"<html><body>redesigned</body></html>"))
    s = settings_for(tmp_path, db_url, [html_source(web)])
    report, _ = sync(s, repo, render=False)
    (sr,) = report.sources
    assert sr.new == 1 and any("matched nothing" in e for e in sr.errors)
    serve_house(web)
    report, _ = sync(s, repo, render=False)
    assert report.sources[0].new == 1 and status(repo, "house").articles == 2


# -- one story from two kinds of source -------------------------------------------------------------------

def test_the_same_story_from_a_feed_and_from_the_archive_is_one_story(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copy2(SEED_FILE, archive / SEED_FILE.name)
    # the wire's RSS of the same article: the seed's title and body lines as HTML paragraphs
    text = SEED_FILE.read_text(encoding="utf-8")
    _, fm, body = text.split("---\n", 2)
    title = yaml.safe_load(fm)["title"]
    paras = "".join(f"<p>{line.strip()}</p>" for line in body.split("<!-- more -->", 1)[1].splitlines() if line.strip())
    rss = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>wire</title>'
           f"<item><title>{title}</title><guid isPermaLink=\"false\">seed-1</guid>"
           f"<pubDate>Mon, 25 Feb 2019 06:24:00 +0800</pubDate>"
           f"<description><![CDATA[{paras}]]></description></item></channel></rss>").encode()
    web.route("/rss", Reply(200, {"Content-Type": RSS}, rss))
    s = settings_for(tmp_path, db_url, [
        {"name": "seed-archive", "type": "archive", "path": str(archive)},
        {"name": "wire", "type": "feed", "url": web.url("/rss")},
    ])
    report, _ = sync(s, repo)
    archive_r, wire_r = report.sources
    assert (archive_r.new, wire_r.new, wire_r.duplicates) == (1, 0, 1)
    assert repo.story_count() == 1 and repo.counts()["articles"] == 2
    (entry,) = repo.feed_entries(None, 50, s.site.base_url)
    assert [c.label for c in entry.also_in] != [] or entry.title.startswith("重庆市应急系统")
    assert (tmp_path / "feeds" / "all.atom").read_text(encoding="utf-8").count("<entry>") == 1


def test_html_without_content_selector_stores_the_listing_summaries(
    tmp_path: Path, db_url: str, repo: Repository, web: Web
) -> None:
    serve_house(web)
    src = html_source(web)
    src["selectors"] = {k: v for k, v in src["selectors"].items() if k not in ("content", "remove")}
    s = settings_for(tmp_path, db_url, [src])
    report, _ = sync(s, repo, render=False)
    assert report.sources[0].new == 2 and web.requests("/house/a2.html") == []
    rows = {str(a["title"]): a for a in repo.iter_articles()}
    assert rows["北京二手房成交量回升"]["content_text"] == "一月中旬二手房成交量回升。"
    report, _ = sync(s, repo, render=False)
    assert (report.sources[0].new, report.sources[0].unchanged) == (0, 2)

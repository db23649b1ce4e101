"""Hostile remote feed items (a real HTTP server on 127.0.0.1 → sync): the same limits and safety as files."""

from __future__ import annotations

import html
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from syndicator.config import from_mapping
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

from .markup import feed_problems
from .test_hostile import HOSTILE_HTML, TEXT, assert_clean_outputs, han


def rss(items: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>wire</title>'
            '<link>https://wire.example/</link><description>d</description>'
            + "".join(items) + "</channel></rss>").encode("utf-8")


def item(n: int, title: str, body: str, date: str = "Wed, 01 May 2024 08:00:00 GMT",
         link: str = "https://wire.example/a") -> str:
    return (f"<item><guid>g{n}</guid><title>{html.escape(title)}</title><link>{html.escape(link)}{n}</link>"
            f"<pubDate>{date}</pubDate><description>{html.escape(body)}</description></item>")


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bytes]]]:
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = pages.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", pages
    httpd.shutdown()
    httpd.server_close()


def test_hostile_remote_items_are_bounded_and_safe(tmp_path: Path, server: tuple[str, dict[str, bytes]]) -> None:
    base, pages = server
    rng = random.Random(7)
    big = "".join(f"<p>{han(rng, 300)}。</p>" for _ in range(1_200))  # ≈ 1 MB of distinct paragraphs
    items = [item(n, f"<b>标题</b>{n}<script>alert(1)</script>", f"<p>{TEXT}</p>{bad}<p>{TEXT}{n}</p>",
                  link="javascript:alert(1)//" if n % 3 == 0 else "https://wire.example/a")
             for n, bad in enumerate(HOSTILE_HTML)]
    items.append(item(100, "来自未来的新闻", f"<p>{TEXT}未来</p>", date="Mon, 01 Jan 2090 00:00:00 GMT"))
    items.append(item(101, "长" * 10_000, f"<p>{TEXT}长标题</p>"))
    items.append(item(102, "超长正文", big))
    pages["/rss"] = rss(items)
    shipped = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    settings = from_mapping({
        "site": shipped["site"], "tags": shipped["tags"], "database": {"url": f"sqlite:///{tmp_path / 'db.sqlite'}"},
        "output": {"dir": str(tmp_path / "feeds")}, "allow_private_networks": True,
        "http": {"min_interval": "0s", "timeout": 10, "max_bytes": 20_000_000},
        "sources": [{"name": "wire", "type": "feed", "url": f"{base}/rss", "every": "15m"}],
    }, base=tmp_path)
    repo = Repository(open_database(settings.database.url))
    before = datetime.now(UTC)
    report, _ = sync(settings, repo)
    assert report.errors == 0, report.sources[0].errors
    rows = list(repo.iter_articles())
    assert len(rows) == len(items)
    for row in rows:
        assert len(str(row["title"])) <= 300
        assert len(str(row["content_html"]).encode()) <= settings.limits.max_body_bytes
        published = datetime.fromisoformat(str(row["published"]))
        assert published <= before + timedelta(days=1), row["title"]
    assert_clean_outputs(tmp_path / "feeds")
    for path in (tmp_path / "feeds").rglob("*.rss"):
        assert b"javascript:" not in path.read_bytes().lower() or not feed_problems(path.read_bytes())

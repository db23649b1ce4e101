"""`syndicator sources` and `syndicator sources check NAME` against a real server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import write_config

from syndicator.cli import main
from syndicator.config import load
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository

from .conftest import Reply, Web


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def config(tmp_path: Path, archive: Path, web: Web) -> Path:
    return write_config(
        tmp_path, archive,
        sources=[
            {"name": "seed-archive", "type": "archive", "path": str(archive), "timezone": "Asia/Shanghai"},
            {"name": "wire", "type": "feed", "url": web.url("/rss"), "timezone": "Asia/Shanghai"},
            {"name": "dead", "type": "feed", "url": web.url("/dead")},
            {"name": "house", "type": "html", "url": web.url("/house/list.html"),
             "selectors": {"item": "li.news", "title": "a.t", "link": "a.t", "date": ".time",
                           "content": "#artical_real", "remove": [".share"]}},
        ],
        allow_private_networks=True, http={"min_interval": "0s"},
    )


def serve(web: Web) -> None:
    web.file("/rss", "rss2.xml", "application/rss+xml", ETag='"e1"')
    web.route("/dead", Reply(410))
    web.file("/house/list.html", "listing.html", "text/html; charset=utf-8")
    web.file("/house/2019/0118/a1.html", "article_a1.html", "text/html")
    web.file("/house/a2.html", "article_a2.html", "text/html")


def test_sources_lists_state_after_a_sync(tmp_path: Path, archive: Path, web: Web) -> None:
    serve(web)
    cfg = config(tmp_path, archive, web)
    code, out, _ = run(cfg, "sources")
    assert code == 0 and out.count("state: never polled") == 4
    code, _, _ = run(cfg, "sync")
    assert code == 1  # the 410 source failed; the others are stored
    code, out, _ = run(cfg, "sources", "--json")
    assert code == 0
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows["wire"]) == {"name", "type", "location", "state", "last_success", "last_error",
                                 "consecutive_failures", "next_due", "etag", "items"}
    assert rows["wire"]["state"] == "ok" and rows["wire"]["etag"] == '"e1"' and rows["wire"]["items"] == 3
    assert rows["wire"]["location"] == web.url("/rss") and rows["wire"]["type"] == "feed"
    assert rows["wire"]["next_due"] != "-" and rows["wire"]["last_success"] != "-"
    assert rows["dead"]["state"].startswith("disabled: 410 Gone") and rows["dead"]["consecutive_failures"] == 1
    assert "410 Gone" in rows["dead"]["last_error"]
    assert rows["house"]["items"] == 2 and rows["seed-archive"]["items"] == 1
    code, out, _ = run(cfg, "sources")
    assert "wire  (feed)  " + web.url("/rss") in out and "etag: \"e1\"" in out and "last error: [dead]" in out


def test_check_fetches_once_and_stores_nothing(tmp_path: Path, archive: Path, web: Web) -> None:
    serve(web)
    cfg = config(tmp_path, archive, web)
    code, out, err = run(cfg, "sources", "check", "wire")
    assert code == 0, err
    assert "check: wire: 3 items, 3 would be added" in out
    assert "257款游戏版号面世：腾讯网易缺席，仅有一款为棋牌类" in out and "[科技, 游戏" in out
    repo = Repository(open_database(load(cfg).database.url))
    assert repo.counts()["articles"] == 0 and "If-None-Match" not in web.requests("/rss")[0].headers
    code, out, _ = run(cfg, "sources", "check", "house", "--limit", "1")
    assert code == 0 and "check: house: 1 items, 1 would be added" in out
    assert len(web.requests("/house/2019/0118/a1.html")) == 1 and web.requests("/house/a2.html") == []
    assert run(cfg, "sync", "--source", "wire")[0] == 0
    code, out, _ = run(cfg, "sources", "check", "wire")
    assert "3 items, 0 would be added" in out and out.count("stored ") == 3


def test_check_errors(tmp_path: Path, archive: Path, web: Web) -> None:
    serve(web)
    cfg = config(tmp_path, archive, web)
    code, _, err = run(cfg, "sources", "check", "dead")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and errors == [f"error: [dead] 410 Gone: {web.url('/dead')}"]
    code, _, err = run(cfg, "sources", "check", "seed-archive")
    assert code == 2 and "is an archive" in err
    code, _, err = run(cfg, "sources", "check", "nope")
    assert code == 2 and "no source named 'nope'" in err

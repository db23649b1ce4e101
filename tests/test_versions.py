"""Versions of one post: an older scrape synced, then the current one (same file name in the same archive)
is an update of one article — same id, ``updated`` moves, the earlier text kept — and a change of
whitespace only is not an update. On SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC
from pathlib import Path

import pytest
from conftest import CORPUS, REPO

from syndicator import config as config_mod
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

VERSIONS = REPO / "tests" / "data" / "versions"
NAME = "两市首份年报出炉金银河早盘大跌8.md"


def setup(tmp_path: Path, db_url: str) -> tuple[config_mod.Settings, Repository, Path]:
    archive = tmp_path / "archive"
    archive.mkdir()
    settings = config_mod.from_mapping(
        {
            "database": {"url": db_url},
            "output": {"dir": str(tmp_path / "out")},
            "sources": [{"name": "corpus", "type": "archive", "path": str(archive), "timezone": "Asia/Shanghai"}],
        },
        base=tmp_path,
    )
    settings = settings.model_copy(update={"database": settings.database.model_copy(update={"url": db_url})})
    return settings, Repository(open_database(db_url)), archive


def put(src: Path | bytes, dest: Path) -> None:
    """Replace a file the way a scraper does (new bytes, a newer mtime)."""
    data = src if isinstance(src, bytes) else src.read_bytes()
    dest.write_bytes(data)
    later = time.time() + 10 + (dest.stat().st_mtime_ns % 7)
    os.utime(dest, (later, later))


def articles(repo: Repository) -> dict[str, dict[str, object]]:
    return {str(a["source_path"]): a for a in repo.iter_articles()}


def test_old_scrape_then_current_is_one_updated_article(tmp_path: Path, db_url: str) -> None:
    settings, repo, archive = setup(tmp_path, db_url)
    put(VERSIONS / "old" / NAME, archive / NAME)
    report, _ = sync(settings, repo, render=False)
    assert (report.total("new"), report.errors) == (1, 0)
    first = articles(repo)[NAME]
    assert "周一早盘" in str(first["content_text"]) and first["version"] == 1

    put(VERSIONS / "new" / NAME, archive / NAME)
    report, _ = sync(settings, repo, render=False)
    assert (report.total("new"), report.total("updated"), report.total("duplicates")) == (0, 1, 0)
    now = articles(repo)
    assert list(now) == [NAME]
    second = now[NAME]
    assert second["id"] == first["id"] and second["story_id"] == first["story_id"]
    assert "周二早盘" in str(second["content_text"]) and "周一早盘" not in str(second["content_text"])
    assert second["version"] == 2
    assert str(second["updated"]) > str(first["updated"])  # ISO strings of one timezone sort by time
    kept = repo.article_versions(str(first["id"]))
    assert [v for v, _t, _h in kept] == [1]

    # the same text with other whitespace (CRLF, indentation, trailing and extra blank lines): not an update
    text = (VERSIONS / "new" / NAME).read_text(encoding="utf-8")
    head, body = text.split("\n---\n", 1)
    reflowed = head + "\n---\n" + "\r\n".join("\u3000\u3000" + line + " \t" for line in body.split("\n")) + "\r\n\r\n"
    put(reflowed.encode("utf-8"), archive / NAME)
    report, _ = sync(settings, repo, render=False)
    assert (report.total("updated"), report.total("unchanged")) == (0, 1)
    third = articles(repo)[NAME]
    assert (third["version"], third["updated"]) == (2, second["updated"])


def test_a_rescrape_that_corrects_only_the_date_moves_the_date(tmp_path: Path, db_url: str) -> None:
    """The scraper first got the date wrong, then right: same text, so not an update (no new version), but
    the stated date wins."""
    settings, repo, archive = setup(tmp_path, db_url)
    text = (VERSIONS / "new" / NAME).read_text(encoding="utf-8")
    put(text.replace("date: 2019-01-22 09:41:02", "date: 2019-01-21 09:41:02").encode("utf-8"), archive / NAME)
    sync(settings, repo, render=False)
    first = articles(repo)[NAME]
    assert str(first["published"]).startswith("2019-01-21T01:41:02")
    put(text.encode("utf-8"), archive / NAME)
    report, _ = sync(settings, repo, render=False)
    assert (report.total("new"), report.total("updated"), report.total("unchanged")) == (0, 0, 1)
    second = articles(repo)[NAME]
    assert str(second["published"]).startswith("2019-01-22T01:41:02")
    assert second["version"] == first["version"] == 1
    (story,) = repo.iter_stories()
    assert str(story["published"]).startswith("2019-01-22T01:41:02")


HISTORY = CORPUS / "history"


def test_every_history_version_then_current_is_one_article(tmp_path: Path) -> None:
    """All of ../shared/corpus/history: each name ends as one article, updated where its text changed."""
    if not HISTORY.is_dir():
        pytest.skip("real corpus not found at ../shared/corpus/history beside the repo (not shipped with the project)")
    settings, repo, archive = setup(tmp_path, f"sqlite:///{tmp_path / 'history.db'}")
    names = sorted({p.name for p in HISTORY.glob("*/*.md")})
    for commit in sorted(HISTORY.iterdir()):
        for old in sorted(commit.glob("*.md")):
            put(old, archive / old.name)
        report, _ = sync(settings, repo, render=False)
        assert report.errors == 0 and report.total("duplicates") == 0
    ids = {name: a["id"] for name, a in articles(repo).items()}
    for name in names:
        shutil.copyfile(CORPUS / "posts" / name, archive / name)
        put(CORPUS / "posts" / name, archive / name)
    report, _ = sync(settings, repo, render=False)
    assert report.total("new") == 0 and report.total("duplicates") == 0
    final = articles(repo)
    assert sorted(final) == names
    assert {name: a["id"] for name, a in final.items()} == ids
    updated = [name for name, a in final.items() if int(str(a["version"])) > 1]
    assert report.total("updated") > 0 and len(updated) >= report.total("updated")
    for name in updated:
        assert repo.article_versions(str(final[name]["id"])), name


def test_stacked_blocks_and_date_sources_through_the_cli(tmp_path: Path, db_url: str) -> None:
    """sync + ``articles --json``: a stacked file is one article with its earlier version stored; each date
    says where it came from (front matter, the body's opening, the file's mtime)."""
    import json
    from datetime import datetime, timedelta, timezone

    from click.testing import CliRunner
    from conftest import write_config

    from syndicator.cli import main

    folder = tmp_path / "posts"
    folder.mkdir()
    fixtures = REPO / "tests" / "data" / "normalize"
    for name in ("stacked.md", "house_junk_date.md", "glued_channel.md"):
        shutil.copy2(fixtures / name, folder / name)
    (folder / "body_date.md").write_text(
        "---\ntitle: 救人\ndate:  图为救人现场\n---\n2019年2月21日 14:30，一名男子在街头晕倒。\n", encoding="utf-8"
    )
    mtime = datetime(2019, 3, 1, 8, 0, tzinfo=UTC)
    os.utime(folder / "house_junk_date.md", (mtime.timestamp(), mtime.timestamp()))
    config = write_config(tmp_path, folder, db_url=db_url)
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(config), "sync"], catch_exceptions=False).exit_code == 0
    out = runner.invoke(main, ["--config", str(config), "articles", "--json"], catch_exceptions=False).stdout
    rows = {Path(str(r["source_path"])).name: r for r in map(json.loads, out.splitlines())}
    assert sorted(rows) == ["body_date.md", "glued_channel.md", "house_junk_date.md", "stacked.md"]
    when = {name: (r["date_source"], datetime.fromisoformat(r["published"])) for name, r in rows.items()}
    assert when["body_date.md"] == ("body", datetime(2019, 2, 21, 14, 30, tzinfo=timezone(timedelta(hours=8))))
    assert when["house_junk_date.md"] == ("file_mtime", mtime)
    assert when["stacked.md"][0] == when["glued_channel.md"][0] == "front_matter"
    stacked = rows["stacked.md"]
    assert stacked["version"] == 2 and stacked["title"] == "香港市民16日起可领取交通补贴逾230万人受惠"
    repo = Repository(open_database(db_url))
    assert [v for v, _t, _h in repo.article_versions(str(stacked["id"]))] == [1]

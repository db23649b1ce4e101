"""End to end through the CLI: the seed archive becomes stored articles and valid feeds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from conftest import SEED_FILE, write_config

from syndicator.cli import main

SEED_TITLE = "重庆市应急系统扎实推进安全生产形势持续稳定好转"


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def outputs(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sync_writes_valid_feeds_with_the_seed(config_file: Path) -> None:
    code, out, err = run(config_file, "sync")
    assert code == 0, err
    assert "sync: sources=1 new=1" in out
    feeds = config_file.parent / "feeds"
    names = set(outputs(feeds))
    assert {"all.atom", "all.rss", "index.html", "feeds.opml"} <= names
    tag_feeds = [n for n in names if n.startswith("tags/")]
    assert "tags/an-quan-sheng-chan.atom" in tag_feeds and "tags/chong-qing-pin-dao.rss" in tag_feeds
    for name in names:
        if name.endswith((".atom", ".rss")):
            parsed = feedparser.parse((feeds / name).read_bytes())
            assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
            if name.startswith("digest."):  # one entry per day: the seed's day
                assert [e.id for e in parsed.entries] == ["urn:syndicator:digest:2019-02-25"], name
                continue
            assert [e.title for e in parsed.entries] == [SEED_TITLE], name
    page = [n for n in names if n.startswith("articles/")]
    assert len(page) == 1
    atom = feedparser.parse((feeds / "all.atom").read_bytes())
    assert atom.entries[0].link == f"http://127.0.0.1:8080/{page[0]}"


def test_second_sync_writes_nothing_and_adds_no_rows(config_file: Path) -> None:
    from syndicator.config import load
    from syndicator.storage.engine import open_database
    from syndicator.storage.repo import Repository

    assert run(config_file, "sync")[0] == 0
    feeds = config_file.parent / "feeds"
    before = outputs(feeds)
    repo = Repository(open_database(load(config_file).database.url))
    counts = repo.counts()
    code, out, _ = run(config_file, "sync")
    assert code == 0
    assert "new=0 updated=0" in out and "feeds_written=0" in out
    assert outputs(feeds) == before
    assert repo.counts() == counts


def test_articles_json_fields(config_file: Path) -> None:
    run(config_file, "sync")
    code, out, _ = run(config_file, "articles", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    for key in ("id", "story_id", "source", "source_path", "link", "title", "original_title", "channel", "published",
                "updated", "author", "submitter", "summary", "content_html", "content_text", "tags"):
        assert key in row
    assert row["title"] == SEED_TITLE
    assert row["source_path"] == SEED_FILE.name
    assert row["published"] == "2019-02-25T06:24:00+08:00"
    assert row["author"] == "蒲双静" and row["submitter"] == "wetech"
    assert "安全生产" in row["tags"] and "重庆频道" in row["tags"]
    code, out, _ = run(config_file, "articles", "--tag", "安全生产", "--json", "--limit", "5")
    assert len(out.splitlines()) == 1


def test_id_stable_across_title_change_and_base_url(tmp_path: Path, archive: Path) -> None:
    cfg = write_config(tmp_path, archive)
    run(cfg, "sync")
    first = json.loads(run(cfg, "articles", "--json")[1].splitlines()[0])
    seed = archive / SEED_FILE.name
    seed.write_text(seed.read_text(encoding="utf-8").replace("持续稳定好转_重庆频道", "稳定好转_重庆频道", 1), encoding="utf-8")
    cfg = write_config(tmp_path, archive, site={"title": "x", "base_url": "https://news.example.org/feeds/",
                                                "timezone": "Asia/Shanghai", "language": "zh-CN"})
    code, out, _ = run(cfg, "sync")
    assert code == 0 and "updated=1" in out
    again = json.loads(run(cfg, "articles", "--json")[1].splitlines()[0])
    assert again["id"] == first["id"] and again["story_id"] == first["story_id"]


def test_bad_files_are_skipped_and_the_rest_syncs(tmp_path: Path, archive: Path) -> None:
    (archive / "binary.md").write_bytes(b"\x00\x01\x02\xff" * 100)
    (archive / "broken yaml | 专访?.md").write_text("---\ntitle: 专访: 某某谈安全生产\ndate: 2019-01-16 16:21:19\ntags: [a, b\n---\n正文一段。\n", encoding="utf-8")
    (archive / "gbk.txt").write_bytes("---\ntitle: 国标编码的文章_重庆频道\ndate: 2019.02.21 16:48\n---\n这是GBK编码的正文。\n".encode("gbk"))
    cfg = write_config(tmp_path, archive)
    code, out, err = run(cfg, "sync")
    assert code == 1  # one file failed
    assert "new=3" in out and "skipped=1" in out
    assert "binary.md" in err
    titles = {json.loads(line)["title"] for line in run(cfg, "articles", "--json")[1].splitlines()}
    assert {"专访: 某某谈安全生产", "国标编码的文章", SEED_TITLE} <= titles


def test_deleted_file_is_withdrawn(config_file: Path, archive: Path) -> None:
    run(config_file, "sync")
    (archive / SEED_FILE.name).unlink()
    code, out, _ = run(config_file, "sync")
    assert code == 0 and "withdrawn=1" in out
    feeds = config_file.parent / "feeds"
    assert feedparser.parse((feeds / "all.atom").read_bytes()).entries == []
    assert not list((feeds / "tags").glob("*.atom"))


def test_unknown_config_key_exits_2(tmp_path: Path, archive: Path) -> None:
    cfg = write_config(tmp_path, archive, site={"titel": "x"})
    code, _, err = run(cfg, "sync")
    assert code == 2
    assert "site.titel" in err and "unknown key" in err


def test_bad_value_exits_2(tmp_path: Path, archive: Path) -> None:
    cfg = write_config(tmp_path, archive, output={"dir": "feeds", "max_entries": "many"})
    code, _, err = run(cfg, "render")
    assert code == 2 and "output.max_entries" in err


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("syndicator")
    assert exe.exists()
    for cmd in ([], ["sync"], ["render"], ["serve"], ["articles"]):
        out = subprocess.run([str(exe), *cmd, "--help"], capture_output=True, text=True, check=True).stdout
        assert "Usage:" in out


def test_render_rewrites_everything(config_file: Path) -> None:
    run(config_file, "sync")
    feeds = config_file.parent / "feeds"
    shutil.rmtree(feeds)
    code, _, _ = run(config_file, "render")
    assert code == 0
    assert (feeds / "all.atom").exists() and (feeds / "index.html").exists()


def test_env_var_sets_config(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNDICATOR_CONFIG", str(config_file))
    monkeypatch.chdir(os.path.dirname(config_file))
    result = CliRunner().invoke(main, ["check-config"])
    assert result.exit_code == 0 and str(config_file) in result.stdout


def test_the_progress_bar_runs_no_thread_so_a_sync_on_a_terminal_can_fork() -> None:
    """rich's refresh thread made a sync on a terminal take the slow path: no forked workers, no forked render."""
    import io
    import threading

    from rich.console import Console

    from syndicator import forked
    from syndicator.cli import progress_bar

    assert forked.available(), "an earlier test left a thread running"
    out = io.StringIO()
    with progress_bar(Console(file=out, force_terminal=True, width=100)) as (progress, rendering):
        assert forked.available(), threading.enumerate()
        progress("seed-archive", 50)
        progress("seed-archive", 100)
        rendering()
        assert forked.available(), threading.enumerate()
    shown = out.getvalue()
    assert "syncing seed-archive" in shown and "100 files" in shown and "rendering feeds and pages" in shown


def test_the_progress_bar_shows_the_share_done_when_the_sync_reads_every_file_and_the_render_stage() -> None:
    import io

    from rich.console import Console

    from syndicator.cli import progress_bar

    out = io.StringIO()
    with progress_bar(Console(file=out, force_terminal=True, width=120, color_system=None)) as (progress, rendering):
        progress("bench", 2_500, 10_000)
        progress("bench", 10_050, 10_000)  # a file added meanwhile: never past 100 %
        progress("feeds", 120)  # an incremental sync's count
        progress("empty", 0, 0)  # a first sync of an empty folder: nothing to show a share of
        rendering()
        rendering("story pages 4,500/9,000")  # what the render is at
    shown = out.getvalue()
    assert shown.count("rendering feeds and pages") >= 2 and "story pages 4,500/9,000" in shown
    assert "2,500/10,000 files" in shown and "25%" in shown
    assert "10,050/10,050 files" in shown and "100%" in shown
    assert "120 files" in shown and "120/" not in shown
    assert "0/0" not in shown and " 0 files" in shown

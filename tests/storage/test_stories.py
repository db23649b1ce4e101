"""Stories end to end (archive → sync → database → feeds), on SQLite and on the real PostgreSQL.

Fixtures in tests/data/stories are made from the seed: a re-post under another channel with two paragraphs,
the lead image and the editor line changed, and two district reports that share two standard paragraphs.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from conftest import REPO, SEED_FILE, write_config
from sqlalchemy import select

from syndicator import clock
from syndicator.cli import main
from syndicator.config import load
from syndicator.storage import schema as m
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

DATA = REPO / "tests" / "data" / "stories"
SEED_TITLE = "重庆市应急系统扎实推进安全生产形势持续稳定好转"


@pytest.fixture
def env(tmp_path: Path, archive: Path, db_url: str):  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, archive, db_url=db_url)
    settings = load(config)
    repo = Repository(open_database(settings.database.url))
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    clock.set_now(lambda: start)
    yield settings, repo, archive
    clock.set_now(None)


def entries(settings, name: str = "all.atom") -> list:  # type: ignore[no-untyped-def]
    parsed = feedparser.parse((settings.output.dir / name).read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return list(parsed.entries)


def stories_json(repo: Repository, min_members: int = 1) -> list[dict]:  # type: ignore[type-arg]
    return list(repo.iter_stories(min_members=min_members))


def test_seed_and_its_repost_are_one_story_with_also_in(env) -> None:  # type: ignore[no-untyped-def]
    settings, repo, archive = env
    shutil.copy(DATA / "repost_fenghuang.md", archive / "repost.md")
    report, _ = sync(settings, repo)
    assert (report.total("new"), report.total("duplicates")) == (1, 1)
    (story,) = stories_json(repo)
    assert story["member_count"] == 2 and story["title"] == SEED_TITLE
    canon = [mb for mb in story["members"] if mb["duplicate_of"] is None]
    assert [mb["channel"] for mb in canon] == ["重庆频道"]  # published first
    (entry,) = entries(settings)
    assert "同时刊发：" in entry.content[0].value and "凤凰资讯" in entry.content[0].value
    # the union of the members' tags: the story is in the 凤凰资讯 channel feed too, once
    tag_feed = settings.output.dir / "tags"
    assert [e.id for e in entries(settings, "tags/feng-huang-zi-xun.atom")] == [entry.id]
    assert [e.id for e in entries(settings, "tags/chong-qing-pin-dao.atom")] == [entry.id]
    assert len(list(tag_feed.glob("*.atom"))) >= 3
    rows = [json.loads(json.dumps(r)) for r in repo.iter_articles()]
    assert sorted(r["duplicate_of"] is None for r in rows) == [False, True]
    assert {r["story_id"] for r in rows} == {story["story_id"]}
    assert all(r["date_source"] == "front_matter" for r in rows)


def test_district_reports_sharing_standard_paragraphs_stay_two_stories(env) -> None:  # type: ignore[no-untyped-def]
    settings, repo, archive = env
    (archive / SEED_FILE.name).unlink()
    shutil.copy(DATA / "district_beibei.md", archive / "beibei.md")
    shutil.copy(DATA / "district_yunyang.md", archive / "yunyang.md")
    report, _ = sync(settings, repo)
    assert (report.total("new"), report.total("duplicates")) == (2, 0)
    assert stories_json(repo, min_members=2) == []
    assert len(entries(settings)) == 2


def test_an_edit_is_an_update_of_the_same_entry(env) -> None:  # type: ignore[no-untyped-def]
    settings, repo, archive = env
    sync(settings, repo)
    (before,) = entries(settings)
    seed = archive / SEED_FILE.name
    later = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    clock.set_now(lambda: later)
    # spacing and punctuation only: stored text refreshed, but no new version and `updated` stays
    seed.write_text(seed.read_text(encoding="utf-8").replace("，", "， "), encoding="utf-8")
    os.utime(seed, (later.timestamp(), later.timestamp()))
    report, _ = sync(settings, repo)
    assert (report.total("new"), report.total("updated")) == (0, 0)
    (same,) = entries(settings)
    assert same.updated == before.updated
    # a real edit: same article id and entry id, one more version, `updated` moves forward, not new
    edit_time = later + timedelta(hours=1)
    clock.set_now(lambda: edit_time)
    text = seed.read_text(encoding="utf-8").replace("[责任编辑：蒲双静]", "（更新）全市共检查企业1200家。\n[责任编辑：蒲双静]")
    seed.write_text(text, encoding="utf-8")
    os.utime(seed, (edit_time.timestamp(), edit_time.timestamp()))
    report, _ = sync(settings, repo)
    assert (report.total("new"), report.total("updated")) == (0, 1)
    (after,) = entries(settings)
    assert after.id == before.id and after.published == before.published
    assert after.updated_parsed > before.updated_parsed
    (row,) = list(repo.iter_articles())
    assert row["version"] == 2 and "1200家" in str(row["content_text"])


def test_a_new_member_does_not_move_the_entry(env) -> None:  # type: ignore[no-untyped-def]
    settings, repo, archive = env
    sync(settings, repo)
    (before,) = entries(settings)
    shutil.copy(DATA / "repost_fenghuang.md", archive / "repost.md")
    sync(settings, repo)
    (after,) = entries(settings)
    assert (after.id, after.published, after.updated) == (before.id, before.published, before.updated)
    assert "凤凰资讯" in after.content[0].value


def test_deleting_files_withdraws_then_drops_the_story(env) -> None:  # type: ignore[no-untyped-def]
    settings, repo, archive = env
    shutil.copy(DATA / "repost_fenghuang.md", archive / "repost.md")
    sync(settings, repo)
    (entry,) = entries(settings)
    # the canonical member goes: the story stays, same entry id, now shown through the re-post
    (archive / SEED_FILE.name).unlink()
    report, _ = sync(settings, repo)
    assert report.total("withdrawn") == 1
    (moved,) = entries(settings)
    assert moved.id == entry.id and "同时刊发" not in moved.content[0].value
    (story,) = stories_json(repo)
    assert [mb["channel"] for mb in story["members"]] == ["凤凰资讯"]
    assert not (settings.output.dir / "tags" / "chong-qing-pin-dao.atom").exists()
    # the last member goes: no entry anywhere, the rows stay, marked withdrawn
    (archive / "repost.md").unlink()
    report, _ = sync(settings, repo)
    assert report.total("withdrawn") == 1
    assert entries(settings) == [] and stories_json(repo) == []
    assert list(repo.iter_articles()) == []
    with repo._session() as s:
        assert len(list(s.scalars(select(m.Article).where(m.Article.withdrawn_at.is_not(None))))) == 2
        assert list(s.scalars(select(m.ArticleBand.article_id))) == []  # withdrawn: not a candidate
    # a withdrawn file that comes back is the same article again, in the same story
    shutil.copy(DATA / "repost_fenghuang.md", archive / "repost.md")
    sync(settings, repo)
    (back,) = entries(settings)
    assert back.id == entry.id


def test_the_index_is_looked_up_not_scanned(env) -> None:  # type: ignore[no-untyped-def]
    settings, repo, archive = env
    sync(settings, repo)
    with repo._session() as s:
        keys = list(s.scalars(select(m.ArticleBand.band_key)))
    from syndicator import dedup

    assert len(keys) == dedup.BANDS + 1
    shutil.copy(DATA / "repost_fenghuang.md", archive / "repost.md")
    from syndicator.normalize import normalize_item
    from syndicator.sources.archive import key_for
    from syndicator.types import RawItem

    raw = RawItem(source="seed-archive", key=key_for("repost.md"), timezone="Asia/Shanghai",
                  data=(archive / "repost.md").read_bytes(), path=str(archive / "repost.md"))
    decision = repo.find_duplicates(normalize_item(raw, settings.normalize, settings.tags))
    assert isinstance(decision, dedup.DuplicateOf) and decision.how == "near"


def test_stories_command(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, repo, archive = env
    shutil.copy(DATA / "repost_fenghuang.md", archive / "repost.md")
    shutil.copy(DATA / "district_beibei.md", archive / "beibei.md")
    sync(settings, repo)
    config = tmp_path / "config.yaml"
    result = CliRunner().invoke(main, ["--config", str(config), "stories", "--json", "--min-members", "2"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    story = json.loads(line)
    assert story["title"] == SEED_TITLE and story["member_count"] == 2
    assert {mb["channel"] for mb in story["members"]} == {"重庆频道", "凤凰资讯"}
    result = CliRunner().invoke(main, ["--config", str(config), "stories"])
    assert result.exit_code == 0 and result.stdout.count("\n    ") == 3  # 2 stories, 3 members
    result = CliRunner().invoke(main, ["--config", str(config), "articles", "--json"])
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert all({"story_id", "duplicate_of", "date_source"} <= set(r) for r in rows)

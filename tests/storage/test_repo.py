"""Repository behaviour, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from syndicator.storage.engine import open_database
from syndicator.storage.repo import FileState, ItemChange, Repository
from syndicator.types import Article, article_id


def make_article(key: str, *, title: str = "标题", body: str = "正文第一段。", tags: tuple[str, ...] = ("安全生产",),
                 source: str = "s", published: datetime | None = None, link: str | None = None) -> Article:
    import hashlib

    return Article(
        source=source, key=key, id=article_id(source, key), title=title, original_title=None, channel="重庆频道",
        published=published or datetime(2019, 2, 24, 22, 24, tzinfo=UTC), updated=None, date_source="front_matter",
        author="蒲双静", submitter="wetech", summary=body[:50], content_html=f"<p>{body}</p>", content_text=body,
        link=link, source_path=key, tags=tags, content_hash=hashlib.sha256(body.encode()).hexdigest(),
    )


@pytest.fixture
def repo(db_url: str) -> Repository:
    r = Repository(open_database(db_url))
    r.ensure_source("s", "archive", "/x")
    r.ensure_source("t", "archive", "/y")
    return r


def change(a: Article, size: int = 1) -> ItemChange:
    return ItemChange(a.key, FileState(size, size, str(size)), a)


def test_migrations_are_idempotent(db_url: str) -> None:
    e1 = open_database(db_url)
    e2 = open_database(db_url)
    with e2.connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() is not None
    e1.dispose()
    e2.dispose()


def test_new_unchanged_update_and_versions(repo: Repository) -> None:
    a = make_article("a.md")
    r = repo.save_batch("s", [change(a)])
    assert (r.new, r.updated, r.unchanged) == (1, 0, 0)
    assert r.changed_tags == {"an-quan-sheng-chan", "chong-qing-pin-dao"} or "an-quan-sheng-chan" in r.changed_tags
    r = repo.save_batch("s", [change(a)])
    assert (r.new, r.updated, r.unchanged) == (0, 0, 1)
    assert not r.changed_stories
    edited = replace(a, content_text="正文第一段。新增的第二段。", content_hash="different")
    r = repo.save_batch("s", [change(edited, 2)])
    assert r.updated == 1
    rows = list(repo.iter_articles())
    assert len(rows) == 1 and rows[0]["id"] == a.id and rows[0]["version"] == 2
    assert repo.article_versions(a.id) == [(1, "标题", a.content_hash)]
    assert repo.counts()["articles"] == 1 and repo.counts()["stories"] == 1


def test_exact_duplicate_across_sources_is_one_story(repo: Repository) -> None:
    a = make_article("a.md")
    b = make_article("b.md", source="t", tags=("应急管理",), published=datetime(2019, 2, 25, tzinfo=UTC))
    repo.save_batch("s", [change(a)])
    r = repo.save_batch("t", [change(b)])
    assert r.duplicates == 1
    entries = repo.feed_entries(None, 50, "http://x/")
    assert len(entries) == 1
    assert {t.name for t in entries[0].tags} == {"安全生产", "应急管理"}
    assert len(repo.feed_entries("ying-ji-guan-li", 50, "http://x/")) == 1
    rows = {r["id"]: r for r in repo.iter_articles()}
    assert rows[b.id]["duplicate_of"] == a.id and rows[a.id]["duplicate_of"] is None


def test_withdraw_removes_story(repo: Repository) -> None:
    a = make_article("a.md")
    repo.save_batch("s", [change(a)])
    r = repo.save_batch("s", [], deleted=["a.md"])
    assert r.withdrawn == 1
    assert repo.feed_entries(None, 50, "http://x/") == []
    assert repo.tags() == []
    assert repo.counts()["articles"] == 1  # kept, as withdrawn


def test_feed_order_and_limit(repo: Repository) -> None:
    arts = [make_article(f"{i}.md", body=f"正文{i}。", published=datetime(2019, 1, 1 + i, tzinfo=UTC)) for i in range(5)]
    repo.save_batch("s", [change(a) for a in arts])
    entries = repo.feed_entries("an-quan-sheng-chan", 3, "http://x/")
    assert [e.published.day for e in entries] == [5, 4, 3]
    assert entries[0].link == f"http://x/articles/{entries[0].story_id}.html"


def test_tag_slugs_unique(repo: Repository) -> None:
    repo.save_batch("s", [change(make_article("a.md", tags=("安全生产", "An Quan Sheng Chan")))])
    slugs = sorted(t.slug for t in repo.tags())
    assert len(slugs) == len(set(slugs)) == 2


def test_reads_never_wait_for_a_writer(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A render reads on while another process holds the writer's turn (a first sync's forked index build):
    reads begin as plain deferred transactions on their snapshot; writes still take the turn up front."""
    from syndicator.errors import StorageError
    from syndicator.storage import engine as engine_mod

    monkeypatch.setattr(engine_mod, "BUSY_TIMEOUT_MS", 300)  # a wait would fail within 0.3 s, not hang
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    repo = Repository(open_database(url))
    repo.ensure_source("s", "archive", "/x")
    repo.save_batch("s", [change(make_article("a.md"))])
    writer = open_database(url).connect()
    writer.exec_driver_sql("UPDATE sources SET location = 'elsewhere'")  # BEGIN IMMEDIATE: the writer's turn
    try:
        assert repo.story_count() == 1  # the last committed state, at once
        assert [t.name for t in repo.tags()] == ["安全生产"]
        assert repo.file_states("s") == {"a.md": (1, 1, "1")}
        with pytest.raises(StorageError, match="locked"):  # a write waits for the turn (here: 0.3 s)
            repo.save_batch("s", [change(make_article("b.md", body="另一篇报道。"))])
    finally:
        writer.rollback()
        writer.close()
    repo.save_batch("s", [change(make_article("b.md", body="另一篇报道。"))])
    assert repo.story_count() == 2

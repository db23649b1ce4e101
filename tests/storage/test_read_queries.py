"""Read queries on SQLite and PostgreSQL: a tag's newest entries, read for several tags at once, are the
entries of ``feed_entries`` for that tag (same stories, same order: date, then story id on equal dates);
the file states are the stored ones."""

from __future__ import annotations

from datetime import timedelta

from test_digest import DAY, article, local, save

from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository


def test_several_tags_at_once_equal_one_tag_at_a_time(db_url: str) -> None:
    repo = Repository(open_database(db_url))
    repo.ensure_source("s", "archive", "/s")
    posts = []
    for i in range(24):
        when = local(DAY, 9, 0) + timedelta(minutes=(i // 3) * 7)  # three stories on each date: ties
        tags = ("甲",) if i % 2 else ("甲", "乙")
        posts.append(article(f"k{i:02d}", when, body=f"第{i}篇的正文，各不相同：{i * 31}。", tags=tags))
    save(repo, "s", *posts)
    repo.save_batch("s", [], deleted=["k05", "k10"])  # withdrawn stories are not entries
    slugs = [t.slug for t in repo.tags()]
    assert len(slugs) == 2
    for limit in (1, 4, 7, 50):
        many = repo.feed_entries_many(slugs, limit, "http://x/")
        for slug in slugs:
            one = repo.feed_entries(slug, limit, "http://x/")
            assert [e.story_id for e in many[slug]] == [e.story_id for e in one]
            assert many[slug] == one
    assert len(repo.feed_entries_many(slugs, 50, "http://x/")[slugs[0]]) in (11, 22)


def test_file_states_are_the_stored_states(db_url: str) -> None:
    """``file_states`` (read with the driver's own cursor) gives every key's (size, mtime_ns, hash)."""
    from syndicator.storage.repo import FileState, ItemChange

    repo = Repository(open_database(db_url))
    repo.ensure_source("s", "archive", "/s")
    repo.ensure_source("t", "archive", "/t")
    repo.save_batch("s", [ItemChange("a.md", FileState(10, 2**40 + 3, "h1")),
                          ItemChange("b.md", FileState(None, None, None)), ItemChange("名字.md", FileState(7, 8, "h3"))])
    repo.save_batch("t", [ItemChange("a.md", FileState(1, 1, "other"))])
    assert repo.file_states("s") == {"a.md": (10, 2**40 + 3, "h1"), "b.md": (None, None, None), "名字.md": (7, 8, "h3")}
    assert repo.file_states("nobody") == {}

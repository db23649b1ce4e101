"""The output-reading queries use the index of their ORDER BY or range, never ``ix_stories_withdrawn`` (which
matches nearly every story: "the newest 50" would sort the whole table). Checked with EXPLAIN QUERY PLAN."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository


def _reads_stories(statement: str) -> bool:
    return statement.lstrip().upper().startswith("SELECT") and "FROM stories" in statement


@contextlib.contextmanager
def _statements(engine: Engine, wanted: Callable[[str], bool] = _reads_stories) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) run inside the block that ``wanted`` picks, to EXPLAIN afterwards."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if wanted(statement):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", grab)


def test_newest_stories_and_day_ranges_do_not_scan_by_withdrawn(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    repo = Repository(engine)
    with _statements(engine) as seen:
        repo.feed_entries(None, 50, "http://x/")
        repo.feed_entries("some-tag", 50, "http://x/")
        repo.stories_published_between(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC),
                                       "http://x/")
        repo.all_story_ids()
        repo.stamps_between(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))  # one digest day
        repo.stories_published(["a", "b"])
    assert len(seen) >= 6
    with engine.connect() as conn:
        for statement, params in seen:
            plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
            assert "ix_stories_withdrawn" not in plan, (statement, plan)
            assert "SCAN stories " not in plan + " " or "USING INDEX" in plan, (statement, plan)


def test_one_digest_day_reads_its_range_only(tmp_path: Path) -> None:
    """A sync's digest days are read through the ``published`` index, not by scanning every story."""
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    repo = Repository(engine)
    with _statements(engine) as seen:
        repo.stamps_between(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
    with engine.connect() as conn:
        (statement, params), = seen
        plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
        assert "SEARCH stories USING INDEX ix_stories_published (published>? AND published<?)" in plan, plan


def test_a_tags_newest_stories_stop_at_the_limit(tmp_path: Path) -> None:
    """A tag's newest stories walk ``ix_story_tags_tag_published`` and stop after the limit (ties on the date
    are sorted by story id on the side), instead of ranking every story of the tag."""
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    repo = Repository(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO tags (id, name, slug) VALUES (1, 't', 't')")
    with _statements(engine, lambda statement: "FROM story_tags" in statement and "LIMIT" in statement) as seen:
        repo.feed_entries_many(["t"], 50, "http://x/")
    with engine.connect() as conn:
        (statement, params), = seen
        plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
        assert "SEARCH story_tags USING INDEX ix_story_tags_tag_published (tag_id=?)" in plan, plan
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan  # only for the right part (the story id)

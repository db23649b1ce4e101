"""Found by the PostgreSQL runs of the crash and concurrency tests; SQLite (one writer at a time) never shows them.

- Outputs kept in the database (for web nodes): every ``render`` reported every output as written
  (``render: 235 files written``) although neither files nor rows changed: the row count of an
  ``INSERT … ON CONFLICT`` was read after SQLAlchemy had closed the cursor (psycopg then answers -1).
- Digest records: a ``sync`` and a ``render`` recording the same new day at once both inserted it; one of them
  failed with ``duplicate key value violates unique constraint "digests_pkey"`` and exit code 1.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from syndicator.render.write import etag_of
from syndicator.storage.engine import open_database
from syndicator.storage.outputs import DbOutputStore
from syndicator.storage.repo import Repository

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = open_database(pg_url)
    yield engine
    engine.dispose()


def test_putting_the_same_bytes_again_is_no_change(engine: Engine) -> None:
    store = DbOutputStore(engine)
    assert store.put("all.atom", b"<feed>one</feed>") is True  # new row
    assert store.put("all.atom", b"<feed>one</feed>") is False  # the same bytes: nothing written
    assert store.put("all.atom", b"<feed>two</feed>") is True  # new bytes
    assert store.all_etags() == {"all.atom": etag_of(b"<feed>two</feed>")}
    assert store.delete("all.atom") is True
    assert store.delete("all.atom") is False


def test_two_writers_recording_the_same_new_digest_day_at_once(engine: Engine) -> None:
    """Several processes' renders record the same days at the same moment: no error, one row per day."""
    writers, days = 4, 60
    newest = datetime(2019, 1, 1, 8, 0, tzinfo=UTC)
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        repo = Repository(engine)
        for d in range(days):
            day = f"2019-{1 + d // 28:02d}-{1 + d % 28:02d}"
            start.wait()
            try:
                repo.save_digest(day, "same stories", 3, newest)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, f"{len(errors)} of {writers * days} failed, e.g. {errors[0]}"
    records = Repository(engine).digest_records()
    assert len(records) == days
    assert {(r.fingerprint, r.stories, r.updated) for r in records.values()} == {("same stories", 3, newest)}

"""Outputs kept in PostgreSQL (for web nodes): putting the same bytes again changes nothing and says so.

Found by the PostgreSQL run of ``test_concurrency.py``: every ``render`` reported every output as written
(``render: 235 files written``) although neither the files nor the rows changed, because the row count of an
``INSERT … ON CONFLICT`` was read after SQLAlchemy had closed the cursor (psycopg then answers -1).
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from syndicator.render.write import etag_of
from syndicator.storage.engine import open_database
from syndicator.storage.outputs import DbOutputStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Engine:
    return open_database(pg_url)


def test_putting_the_same_bytes_again_is_no_change(engine: Engine) -> None:
    store = DbOutputStore(engine)
    try:
        assert store.put("all.atom", b"<feed>one</feed>") is True  # new row
        assert store.put("all.atom", b"<feed>one</feed>") is False  # the same bytes: nothing written
        assert store.put("all.atom", b"<feed>two</feed>") is True  # new bytes
        assert store.all_etags() == {"all.atom": etag_of(b"<feed>two</feed>")}
        assert store.delete("all.atom") is True
        assert store.delete("all.atom") is False
    finally:
        engine.dispose()

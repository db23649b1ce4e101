"""near-duplicate index, INDEX_VERSION 3 (issue: performance): every stored band key made again.

The MinHash is now taken over the anchored 5-grams of a text (``dedup.sampled_grams``), so the keys stored by
earlier versions would never meet the keys of new articles: every article that has band rows gets them made
again from its stored text and headline, once, here. No schema change. It runs in one transaction (Alembic's
own per revision on SQLite, the advisory-locked one on PostgreSQL): a failure halfway leaves revision 0006 and
the old rows, and the next start re-indexes from the beginning.

Revision ID: 0007
Revises: 0006
"""
import logging
import time

from alembic import op
import sqlalchemy as sa

from syndicator import dedup

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

log = logging.getLogger("syndicator.storage.migrations")

_CHUNK = 500  # articles whose texts are in memory at once
_bands = sa.table('article_bands', sa.column('article_id', sa.String), sa.column('band_no', sa.Integer),
                  sa.column('band_key', sa.BigInteger))
_articles = sa.table('articles', sa.column('id', sa.String), sa.column('content_text', sa.Text),
                     sa.column('title', sa.Text))


def upgrade() -> None:
    conn = op.get_bind()
    started = time.monotonic()
    ids = [r[0] for r in conn.execute(sa.select(_bands.c.article_id).distinct().order_by(_bands.c.article_id))]
    if not ids:
        return
    log.info("re-indexing %d articles for near-duplicate detection (once, after this upgrade)", len(ids))
    # rows written without the key index, which is built once at the end: one sort instead of a random insert
    # into a B-tree per row (``Repository.bulk_index`` does the same for a first sync)
    op.drop_index('ix_article_bands_key', table_name='article_bands', if_exists=True)  # a killed bulk sync drops it
    conn.execute(sa.delete(_bands))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = conn.execute(sa.select(_articles.c.id, _articles.c.content_text, _articles.c.title)
                            .where(_articles.c.id.in_(chunk)).order_by(_articles.c.id))
        values = [{"article_id": aid, "band_no": i, "band_key": key}
                  for aid, text, title in rows
                  for i, key in enumerate(dedup.fingerprint(text or "", title or "").bands)]
        if values:
            conn.execute(sa.insert(_bands), values)
        if start and start % 20_000 == 0:
            log.info("re-indexed %d of %d articles", start, len(ids))
    op.create_index('ix_article_bands_key', 'article_bands', ['band_key'], unique=False)
    log.info("re-indexed %d articles in %.1fs", len(ids), time.monotonic() - started)


def downgrade() -> None:
    """No schema to undo; the band rows go, since an older version's keys would never meet these: its
    ``sync --full`` indexes every article without rows its own way."""
    op.get_bind().execute(sa.delete(_bands))

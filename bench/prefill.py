"""Fill a benchmark database fast (``python -m bench --prefill bulk``): no duplicate look-ups.

The no-op, incremental and render cases need a database that already holds the archive. A cold sync builds
it the real way, which at 100,000 posts takes long; this reads and normalizes the archive exactly as a sync
does (the same scan, the same worker pool, the same limits), stores the articles with
``Repository.bulk_load`` (one story per article: near-duplicates are not merged, so the story count is a
little higher than a sync's) and records every file's state, so the next sync of the unchanged archive is a
no-op. Outputs are then written by one ordinary (untimed) sync, which renders everything into the empty
output folder.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, select

from syndicator import clock, config, limits
from syndicator.dedup import Thresholds
from syndicator.parallel import normalize_all
from syndicator.sources import archive
from syndicator.storage import schema as m
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.types import Article

BATCH = 500


def prefill(config_path: Path) -> int:
    """Store every post of the config's (only) archive source; returns the number of articles stored."""
    settings = config.load(str(config_path))
    repo = Repository(open_database(settings.database.url), Thresholds(**settings.dedup.model_dump()))
    (src,) = [s for s in settings.sources if s.type == "archive"]
    assert src.path is not None
    repo.ensure_source(src.name, src.type, str(src.path))
    with repo.engine.connect() as conn:
        source_id = conn.execute(select(m.Source.id).where(m.Source.name == src.name)).scalar_one()
        conn.rollback()
    _, files = archive.scan(src.name, src.path, src.timezone, {}, max_bytes=settings.limits.max_file_bytes)
    stored = 0
    articles: list[Article] = []
    states: list[dict[str, object]] = []
    # bulk_load makes each article's fingerprint itself: the workers need not
    for fr, result in normalize_all(((fr, fr.item) for fr in files), settings.normalize, settings.tags,
                                    fingerprints=False):
        article, error = result[0], result[1]
        if article is not None:
            article, _ = limits.bound(article, settings.limits, now=clock.now(), fallback=fr.item.mtime)
            articles.append(article)
        states.append({"source_id": source_id, "key": fr.item.key, "size": fr.state.size,
                       "mtime_ns": fr.state.mtime_ns, "raw_hash": fr.state.raw_hash,
                       "article_id": article.id if article is not None else None, "error": error})
        if len(states) >= BATCH:
            stored += _store(repo, src.name, articles, states)
    return stored + _store(repo, src.name, articles, states)


def _store(repo: Repository, source: str, articles: list[Article], states: list[dict[str, object]]) -> int:
    n = repo.bulk_load(source, articles) if articles else 0
    if states:
        with repo.engine.begin() as conn:
            conn.execute(insert(m.SourceItem), states)
    articles.clear()
    states.clear()
    return n


if __name__ == "__main__":
    import sys

    print(f"stored {prefill(Path(sys.argv[1]))} articles")

"""The labelled story evaluation (bench/stories.py) itself: small, deterministic, on the Zipf pseudo-language.

The full run (corpus sentences, real groups, 100,000 stored articles) is `python -m bench.stories`.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime

from conftest import REPO

from syndicator import dedup
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository

sys.path.insert(0, str(REPO))  # bench/ is a folder of the repository, not part of the package

from bench import stories as bench


def sentences() -> list[str]:
    return bench.zipf_sentences(8000, random.Random(3))


def test_synthetic_set_is_deterministic_and_labelled() -> None:
    pool = sentences()
    a, b = bench.synthetic_set(pool, 40, seed=5), bench.synthetic_set(pool, 40, seed=5)
    assert [(x.article.id, x.article.content_hash, x.story) for x in a] == [
        (x.article.id, x.article.content_hash, x.story) for x in b
    ]
    assert len({x.story for x in a}) == 40 and len(a) > 40


def test_pair_score() -> None:
    s = bench.pair_score({"a": 1, "b": 1, "c": 2, "d": 2}, {"a": "x", "b": "x", "c": "x", "d": "y"})
    assert (s.true_pairs, s.predicted_pairs, s.correct_pairs) == (2, 3, 1)


def test_synthetic_quality_at_the_shipped_thresholds() -> None:
    score = bench.evaluate_synthetic(sentences(), dedup.Thresholds(), stories=120, seed=7)
    assert score.true_pairs > 50
    assert score.precision >= 0.99 and score.recall >= 0.95, score


def test_timing_finds_reposts_in_a_filled_database() -> None:
    result = bench.timing(sentences(), 600, dedup.Thresholds(), probes=20)
    assert result["found_reposts"] == 1.0 and result["lookup_median_ms"] > 0


def test_bulk_load_indexes_and_skips_known_ids(db_url: str) -> None:
    repo = Repository(open_database(db_url))
    repo.ensure_source("fill", "archive", None)
    pool = sentences()
    when = datetime(2019, 2, 1, tzinfo=UTC)
    arts = [bench.make_article(f"f{i}.md", f"标题{i}号新闻", pool[i * 8 : i * 8 + 8], "重庆频道", when, source="fill")
            for i in range(30)]
    assert repo.bulk_load("fill", arts) == 30
    assert repo.bulk_load("fill", arts[:5]) == 0
    assert repo.story_count() == 30 and [t.name for t in repo.tags()] == ["重庆频道"]
    repost = bench.make_article("r.md", "另一个标题", pool[8:15], "凤凰资讯", when, source="fill")
    decision = repo.find_duplicates(repost)
    assert isinstance(decision, dedup.DuplicateOf) and decision.article_id == arts[1].id

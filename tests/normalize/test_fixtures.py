"""Real posts from the corpus (tests/data/normalize/*.md), each beside its expected values (*.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syndicator.config import NormalizeSettings, TagSettings
from syndicator.normalize import inspect_item

from .conftest import DATA, raw_file

FIXTURES = sorted(DATA.glob("*.md"))


def observed(path: Path, rules: NormalizeSettings, tags: TagSettings) -> dict[str, Any]:
    article, problems = inspect_item(raw_file(path.read_bytes(), path=path.name), rules, tags)
    assert article is not None, problems
    paras = article.content_text.split("\n\n") if article.content_text else []
    return {
        "title": article.title,
        "original_title": article.original_title,
        "channel": article.channel,
        "published": article.published.isoformat(),
        "date_source": article.date_source,
        "author": article.author,
        "submitter": article.submitter,
        "publisher": article.publisher,
        "tags": list(article.tags),
        "paragraphs": len(paras),
        "first_paragraph": paras[0] if paras else None,
        "last_paragraph": paras[-1] if paras else None,
        "summary": article.summary,
        "earlier_versions": [v.title for v in article.earlier_versions],
        "problems": problems,
    }


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture(path: Path, rules: NormalizeSettings, tags: TagSettings) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert observed(path, rules, tags) == expected


if __name__ == "__main__":  # regenerate the expected files after a reviewed rule change
    from syndicator.config import load

    from .conftest import REPO

    s = load(REPO / "config.yaml")
    for p in FIXTURES:
        p.with_suffix(".json").write_text(
            json.dumps(observed(p, s.normalize, s.tags), ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8",
        )

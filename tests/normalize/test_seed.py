"""The seed article: every field exactly as the brief states it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from syndicator.config import NormalizeSettings, TagSettings
from syndicator.normalize import inspect_item, normalize_item
from syndicator.types import Article, article_id

from .conftest import REPO, raw_file

SEED = REPO / "seeds" / "000_eab97c569ba7ef6e.txt"


@pytest.fixture(scope="module")
def seed(rules: NormalizeSettings, tags: TagSettings) -> Article:
    if not SEED.exists():
        pytest.skip(f"seed file {SEED.name} not in seeds/")
    return normalize_item(raw_file(SEED.read_bytes(), path=SEED.name), rules, tags)


def test_title_channel_original(seed: Article) -> None:
    assert seed.title == "重庆市应急系统扎实推进安全生产形势持续稳定好转"
    assert seed.channel == "重庆频道"
    assert seed.original_title == "全市应急系统扎实推进安全生产形势持续稳定好转"


def test_dates(seed: Article) -> None:
    shanghai = timezone(timedelta(hours=8))
    assert seed.published == datetime(2019, 2, 25, 6, 24, tzinfo=shanghai)
    assert seed.published.tzinfo is UTC
    assert seed.published == datetime(2019, 2, 24, 22, 24, tzinfo=UTC)
    assert seed.date_source == "front_matter"
    assert seed.updated is None


def test_people(seed: Article) -> None:
    assert seed.author == "蒲双静"
    assert seed.submitter == "wetech"
    assert seed.publisher is None


def test_body_paragraphs(seed: Article) -> None:
    paras = seed.content_text.split("\n\n")
    assert len(paras) == 18
    assert paras[0].startswith("针对春节后企业复产复工")
    assert paras[-1].endswith("并列入重点监管对象予以监管。")
    assert len(set(paras)) == 18
    for p in paras:
        assert p == p.strip() and "  " not in p and "\t" not in p
    assert seed.content_html == "".join(f"<p>{p}</p>" for p in paras)  # no markup chars in this text
    for junk in ("原标题", "责任编辑", "<!--", "more", "<img", "ifengimg"):
        assert junk not in seed.content_html


def test_summary(seed: Article) -> None:
    assert seed.summary == (
        "针对春节后企业复产复工和返程客流进入高峰期的情况，全市应急系统以有效防范和坚决遏制重特大事故为重点，"
        "一手抓机构改革，一手抓企业复产复工，扎实推进全市安全生产形势持续稳定好转。"
    )
    assert len(seed.summary) <= 150


def test_tags(seed: Article) -> None:
    assert {
        "安全生产",
        "应急管理",
        "重庆频道",
        "北碚区",
        "云阳县",
        "武隆区",
        "大足区",
        "忠县",
        "垫江县",
    } <= set(seed.tags)
    assert len(seed.tags) == len(set(seed.tags))


def test_identity(seed: Article) -> None:
    assert seed.id == article_id("test", SEED.name)
    assert seed.link is None
    assert seed.source_path == SEED.name
    assert len(seed.content_hash) == 64
    assert seed.earlier_versions == ()


def test_seed_lint_is_clean(rules: NormalizeSettings, tags: TagSettings) -> None:
    if not SEED.exists():
        pytest.skip("seed missing")
    article, problems = inspect_item(raw_file(SEED.read_bytes(), path=SEED.name), rules, tags)
    assert article is not None
    assert problems == []

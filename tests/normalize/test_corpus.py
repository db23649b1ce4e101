"""The whole real corpus (../shared/corpus beside the repo): every file an article or a reasoned rejection."""

from __future__ import annotations

import re
import sys
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from syndicator.config import NormalizeSettings, TagSettings
from syndicator.normalize import inspect_item
from syndicator.normalize.dates import parse_date
from syndicator.types import Article, RawItem

from .conftest import CORPUS, REPO

sys.path.insert(0, str(REPO))  # bench/ is a folder of the repository, not part of the installed package
from bench.corpus_quality import current_body, expected_author, related_snippets, title_line

POSTS = CORPUS / "posts"
BOILERPLATE = re.compile(
    r"原标题|责任编辑|<!--|打开微信，点击底部的“发现”|使用“扫一扫”即可将网页分享至朋友圈|_w[12]?\d_h[12]?\d\b"
    r"|^(?:第一财经|APP|日报微博|微信服务号|微信订阅号|标签：)$|播放数：",
    re.M,
)
CHANNEL_SUFFIX = re.compile(r"(?:_\w{0,8}频道|频道|——(?:凤凰网)?房产\w{1,6}|_凤凰\w{0,4}|_)$")
FM_DATE = re.compile(r"^date:[ \t]*(.*?)[ \t]*$", re.M)


@pytest.fixture(scope="module")
def results(rules: NormalizeSettings, tags: TagSettings) -> list[tuple[str, str, Article | None, list[str]]]:
    if not POSTS.is_dir():
        pytest.skip(
            "real corpus not found at ../shared/corpus/posts beside the repo (it is not shipped with the project)"
        )
    out = []
    mtime = datetime(2020, 1, 1, tzinfo=UTC)
    for path in sorted(POSTS.iterdir()):
        data = path.read_bytes()
        raw = RawItem(
            source="corpus", key=path.name, path=path.name, data=data, mtime=mtime, timezone="Asia/Shanghai"
        )
        article, problems = inspect_item(raw, rules, tags)
        out.append((path.name, data.decode("utf-8", "replace"), article, problems))
    return out


def test_every_file_is_an_article_or_rejected_with_reason(
    results: list[tuple[str, str, Article | None, list[str]]],
) -> None:
    assert len(results) >= 2000
    for name, _text, article, problems in results:
        if article is None:
            assert problems and problems[0].startswith("rejected:") and len(problems[0]) > len("rejected:"), (
                name
            )
            assert "internal error" not in problems[0], (name, problems)
    rejected = Counter(p[0] for _n, _t, a, p in results if a is None)
    assert sum(rejected.values()) < len(results) * 0.01, rejected


def test_no_residual_boilerplate(results: list[tuple[str, str, Article | None, list[str]]]) -> None:
    residue = []
    for name, _text, article, _p in results:
        if article is None:
            continue
        text = article.content_html.replace("</p><p>", "\n")
        m = BOILERPLATE.search(text)
        if m:
            residue.append((name, m.group(0)))
    assert residue == []


def test_no_title_ends_in_a_channel_suffix(results: list[tuple[str, str, Article | None, list[str]]]) -> None:
    bad = [
        a.title
        for _n, _t, a, _p in results
        if a is not None
        and CHANNEL_SUFFIX.search(a.title)
        and not re.fullmatch(r"\w{1,6}频道", a.title)  # a channel's own page ("娱乐频道") is its title
    ]
    assert bad == []


def test_no_first_paragraph_is_a_truncated_copy(
    results: list[tuple[str, str, Article | None, list[str]]],
) -> None:
    bad = []
    for name, _text, article, _p in results:
        if article is None or not article.content_text:
            continue
        paras = [re.sub(r"\s+|…$", "", p) for p in article.content_text.split("\n\n")]
        first = paras[0]
        if len(first) >= 8 and any(p.startswith(first) and len(p) > len(first) for p in paras[1:]):
            bad.append(name)
        assert len(paras) == len(set(paras)), name
    assert bad == []


def test_dates_equal_front_matter_date(results: list[tuple[str, str, Article | None, list[str]]]) -> None:
    checked = 0
    for name, text, article, _p in results:
        if article is None:
            continue
        dates = FM_DATE.findall(text.replace("\r", ""))
        if not dates:
            continue
        value = re.sub(r"[ \t]+", " ", dates[-1]).strip()  # the last block is the current version
        m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)-? (\d\d):(\d\d)(?::(\d\d))?", value)
        if not m:
            assert article.date_source != "front_matter" or parse_date(value, "Asia/Shanghai") is not None, (
                name,
                value,
            )
            continue
        y, mo, d, h, mi, s = (int(x) if x else 0 for x in m.groups())
        expected = datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo("Asia/Shanghai"))
        assert article.published == expected, (name, value)
        assert article.date_source == "front_matter", name
        checked += 1
    assert checked > 2000


def test_author_found_where_the_file_names_one(results: list[tuple[str, str, Article | None, list[str]]]) -> None:
    named = missed = 0
    for name, text, article, _p in results:
        person = expected_author(current_body(text), title_line(text))
        if article is None or person is None:
            continue
        named += 1
        if article.author != person:
            missed += 1
            print(name, person, article.author)
    assert named > 1300 and missed == 0


def test_no_related_snippet_left(results: list[tuple[str, str, Article | None, list[str]]]) -> None:
    left = []
    for name, text, article, _p in results:
        if article is None:
            continue
        paragraphs = {re.sub(r"\s+", "", p) for p in article.content_text.split("\n\n")}
        if any(re.sub(r"\s+", "", s) in paragraphs for s in related_snippets(current_body(text))):
            left.append(name)
    assert left == []

"""Property tests: any text in any front-matter field and body → an Article or a ParseError, never a crash."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from conftest import drawn_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syndicator.config import NormalizeSettings, TagSettings
from syndicator.errors import ParseError
from syndicator.normalize import inspect_item, normalize_item
from syndicator.types import Article, RawItem

RULES = NormalizeSettings()
TAGS = TagSettings(channels={"重庆频道": "重庆"}, rules={"安全生产": ["安全生产", "/复[产工]/"]})
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
TAG = re.compile(r"<[^>]*>")
PIECES = st.sampled_from(
    [
        "---",
        "<!-- more -->",
        "原标题：",
        "[责任编辑：X]",
        "<img src='x_w1_h1.png'>",
        "<script>alert(1)</script>",
        '<img src="javascript:alert(1)" onerror="x">',
        "\r",
        "\u3000",
        "\x00",
        "\ud800",
        "\ufffe",
        "title: a: b",
        "date: 2019-02-25- 06:24",
        "打开微信，点击底部的“发现”，",
        "使用“扫一扫”即可将网页分享至朋友圈。",
        "第一财经",
        "\n",
        " ",
        "_重庆频道",
        "楼盘价格 : ",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=40), PIECES), max_size=12).map("".join)


def check(article: Article) -> None:
    for value in (
        article.title,
        article.summary,
        article.content_text,
        article.content_html,
        article.author or "",
        article.original_title or "",
        article.channel or "",
        *article.tags,
    ):
        assert not XML_INVALID.search(value), value
    for tag in TAG.findall(article.content_html):
        low = tag.lower()
        assert not low.startswith("<script")
        assert not re.search(r"\son\w+\s*=", low)
        assert "javascript:" not in low
    assert article.published.tzinfo is UTC
    assert article.title


def run(data: bytes) -> None:
    raw = RawItem(
        source="p",
        key="k.md",
        path="k.md",
        data=data,
        mtime=datetime(2020, 1, 1, tzinfo=UTC),
        timezone="Asia/Shanghai",
    )
    try:
        article = normalize_item(raw, RULES, TAGS)
    except ParseError as exc:
        assert not exc.reason.startswith("internal error"), exc.reason
        assert inspect_item(raw, RULES, TAGS)[0] is None
        return
    check(article)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=TEXT, author=TEXT, date=TEXT, tags=TEXT, body=TEXT)
def test_any_front_matter_and_body(title: str, author: str, date: str, tags: str, body: str) -> None:
    text = f"---\ntitle: {title}\nauthor: {author}\ndate: {date}\ntags: {tags}\ncategories: \n---\n{body}"
    run(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    run(data)


@settings(max_examples=200, deadline=None)
@given(
    title=st.one_of(st.none(), TEXT),
    html=st.one_of(st.none(), TEXT),
    date_text=st.one_of(st.none(), TEXT),
    author=st.one_of(st.none(), TEXT),
    tags=st.lists(TEXT, max_size=3),
)
def test_any_network_item(
    title: str | None, html: str | None, date_text: str | None, author: str | None, tags: list[str]
) -> None:
    raw = RawItem(
        source="f",
        key="u",
        url="https://e.com/u",
        title=title,
        content_html=html,
        date_text=date_text,
        author=author,
        tags=tuple(tags),
        timezone="Asia/Shanghai",
    )
    try:
        article = normalize_item(raw, RULES, TAGS)
    except ParseError as exc:
        assert not exc.reason.startswith("internal error"), exc.reason
        return
    check(article)


SUMMARY_TEXT = st.one_of(
    drawn_text(st.sampled_from(list("新闻记者报道中国，。！？”」』a1 \n\r\t\u3000\u00a0\u2028\u200b\x00")) | st.characters(),
               max_size=700),
    # pieces with long runs of whitespace: a head that flattens to less than a summary
    st.lists(st.sampled_from(["新闻。", "报道”", "中", "a b", " " * 40, "\n\n", "\r\n" * 20, "\u3000" * 30, "\n"]),
             max_size=80).map("".join),
)


@given(text=SUMMARY_TEXT, limit=st.integers(min_value=1, max_value=150))
@settings(max_examples=400)
def test_a_summary_made_from_the_head_is_the_summary_of_the_whole_text(text: str, limit: int) -> None:
    from syndicator.normalize import _flat, _opening, summarize

    assert summarize(text, limit) == _opening(_flat(text), limit)


def _without_punctuation(text: str) -> str:
    """The plain definition: every run of non-letters, non-digits and underscores deleted."""
    return re.sub(r"[\W_]+", "", text)


@given(drawn_text(st.sampled_from(list("新闻报道ＡＢ１２①℃㎡ﬁ，。！ Ⅻ\u0301e_-")) | st.characters(), max_size=300))
def test_the_content_hash_is_its_plain_definition(text: str) -> None:
    """The hash skips NFKC and the second strip when the stripped text is NFKC already: the same hash."""
    import hashlib
    import unicodedata

    from syndicator.normalize.text import content_hash

    canon = _without_punctuation(unicodedata.normalize("NFKC", _without_punctuation(text))).casefold()
    assert content_hash(text) == hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()


# every space _SPACES knows (the two marks among them), ASCII, CJK and its punctuation, anything else
_LINE = drawn_text(st.sampled_from(list(" \t\x85\u00a0\u1680\u2000\u2005\u200a\u200e\u200f\u2028\u2029\u202f\u205f\u3000"
                                        "新闻，。ab1_-")) | st.characters(), max_size=80)


@given(_LINE)
def test_a_cleaned_line_is_its_plain_definition(text: str) -> None:
    """clean_line joins str.split() where it can: the same line as every run of spaces made one, stripped."""
    from syndicator.normalize.text import _SPACES, clean_chars, clean_line, normalize_newlines

    for line in clean_chars(normalize_newlines(text)).split("\n"):  # a line as the body gets it
        assert clean_line(line) == _SPACES.sub(" ", line).strip()


@given(_LINE)
def test_word_chars_are_the_text_without_whitespace_punctuation_and_underscores(text: str) -> None:
    from syndicator.types import word_chars

    assert word_chars(text) == _without_punctuation(text)

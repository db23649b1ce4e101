"""Pure dedup decisions: identity, near-duplicate rules and the fingerprint the index stores."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import rensa
from conftest import drawn_text
from hypothesis import given
from hypothesis import strategies as st

from syndicator import dedup
from syndicator.types import Article, article_id

SHARED_A = "针对春节后企业复产复工和返程客流进入高峰期的情况，全市应急系统以有效防范和坚决遏制重特大事故为重点，一手抓机构改革。"
SHARED_B = "当前，市应急管理局各级各部门严格按照市委、市政府有关应急管理防灾减灾救灾和安全生产的指示精神，健全完善调协配合及应急联动工作机制。"
EVENT = (
    "近日，北碚区委、区政府及相关部门主要负责人一行到区应急管理局，调研指导应急管理机构改革推进情况。相关负责人提出："
    "要尽快落实三定方案，使全区应急管理工作科学化、高效化运转；要进一步强化组织领导，明确职责，团结协作，形成合力；"
    "要做到抓机构改革和抓节后企业复产复工两不误、两促进；要做到有效防范生产安全和自然灾害事故。"
)
OTHER_EVENT = (
    "近日，云阳县委、县政府主要负责人先后到县应急管理局及消防大队调研机构改革工作，提出要认真贯彻落实中央、市委、市政府"
    "对应急管理防灾减灾救灾和安全生产工作作出的重要指示，加强、优化、统筹全县应急能力建设，构建统一领导、权责一致、"
    "权威高效的全县应急能力体系，推动形成统一指挥，专常兼备、反应灵敏、上下联动、平战结合的应急管理体制。"
)


def art(key: str, title: str, text: str, link: str | None = None) -> Article:
    return Article(
        source="s", key=key, id=article_id("s", key), title=title, original_title=None, channel="重庆频道",
        published=datetime(2019, 2, 24, tzinfo=UTC), updated=None, date_source="front_matter", author=None,
        submitter=None, summary="", content_html="", content_text=text, link=link, source_path=key, tags=(),
        content_hash=hashlib.sha256(dedup.comparable(text).encode()).hexdigest(),
    )


def cand(a: Article, story: str = "story-x") -> dedup.Candidate:
    return dedup.Candidate(a.id, story, a.content_hash, dedup.canonical_url(a.link), a.content_text, 1, a.title,
                           a.source)


def test_canonical_url_drops_tracking_fragment_and_case() -> None:
    url = "HTTPS://News.Example.COM:443/a/b?id=3&utm_source=x&spm=1.2&from=timeline#top"
    assert dedup.canonical_url(url) == "https://news.example.com/a/b?id=3"
    assert dedup.canonical_url(None) is None


def test_comparable_ignores_width_space_and_punctuation() -> None:
    assert dedup.same_title("A股周一见 | 下周能走好嘛？", "Ａ股周一见｜下周能走好嘛?")
    assert dedup.same_title("两市股指丨弱势震荡", "两市股指｜弱势震荡")
    assert not dedup.titled_alike("娱乐频道", "娱乐频道")  # too generic to say anything


def reference_comparable(text: str) -> str:
    """The definition: NFKC, ``丨`` removed, no whitespace or punctuation, case-folded."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).replace("丨", "")).casefold()


# CJK and its punctuation, the compatibility blocks comparable() folds itself, other compatibility characters
# (Arabic presentation forms, CJK compatibility ideographs, mathematical letters), combining marks (a mark after
# a folded character must compose exactly as NFKC composes it), Hangul jamo, ASCII
_MIXED = drawn_text(
    st.one_of(
        st.sampled_from("重庆频道丨｜，。：；！？（）“”《》、…　℃㎡①Ⅱ²ＡＺａｚ０９　﹏︰･ｶﾞ\u00a0\u2002\u3000"),
        st.characters(min_codepoint=0x00A0, max_codepoint=0x036F),
        st.characters(min_codepoint=0x1100, max_codepoint=0x11FF),
        st.characters(min_codepoint=0x2000, max_codepoint=0x24FF),
        st.characters(min_codepoint=0x3000, max_codepoint=0x33FF),
        st.characters(min_codepoint=0xF900, max_codepoint=0xFFEF),
        st.characters(min_codepoint=0x1D400, max_codepoint=0x1D7FF),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    ),
    max_size=60,
)


@given(_MIXED)
def test_comparable_is_nfkc_without_punctuation(text: str) -> None:
    assert dedup.comparable(text) == reference_comparable(text)


def reference_sampled_grams(c: str) -> list[str]:
    """The anchored 5-grams, written plainly: those starting at a BMP letter or digit whose Knuth hash is in the
    lowest quarter."""
    def anchor(ch: str) -> bool:
        return ord(ch) < 0x10000 and ch.isalnum() and (ord(ch) * 2654435761) % 2**32 < 2**32 // 4
    if len(c) <= 5:
        return [c] if c else []
    return [c[i : i + 5] for i in range(len(c) - 4) if anchor(c[i])]


@given(_MIXED)
def test_sampled_grams_are_the_anchored_5_grams(text: str) -> None:
    c = dedup.comparable(text)
    assert dedup.sampled_grams(c) == reference_sampled_grams(c)


@pytest.mark.parametrize("text", [EVENT + SHARED_A, "Sanctions on Russian banks were widened on Monday, officials said.",
                                  "Власти расширили санкции против российских банков в понедельник, сообщили чиновники.",
                                  "정부는 월요일 러시아 은행에 대한 제재를 확대했다고 관리들이 밝혔다"])
def test_a_quarter_of_the_grams_of_any_script_are_sampled(text: str) -> None:
    """Every script's letters can anchor (not only Chinese): a text in any of them gets band keys."""
    c = dedup.comparable(text)
    positions = len(c) - dedup.SHINGLE + 1
    assert 0.1 * positions < len(dedup.sampled_grams(c)) < 0.45 * positions
    fp = dedup.fingerprint(text)
    assert len(fp.bands) == dedup.BANDS and fp.size == positions


def test_band_keys_are_the_stored_definition() -> None:
    """Stored band keys are compared with new ones: their definition must not move without INDEX_VERSION."""
    fp = dedup.fingerprint(EVENT + SHARED_A, "北碚区推进应急管理机构改革")
    digest = rensa.RMinHash(num_perm=dedup.NUM_PERM, seed=dedup.SEED)
    digest.update(reference_sampled_grams(dedup.comparable(EVENT + SHARED_A)))
    rows = [int(v) for v in digest.digest()]
    expected = []
    for band in range(dedup.BANDS):
        raw = f"{dedup.INDEX_VERSION}:{band}:" + ",".join(map(str, rows[band * dedup.ROWS : (band + 1) * dedup.ROWS]))
        expected.append(int.from_bytes(hashlib.blake2b(raw.encode(), digest_size=8).digest(), "big") >> 1)
    assert list(fp.bands[: dedup.BANDS]) == expected
    assert fp.bands[dedup.BANDS] == dedup.title_key("北碚区推进应急管理机构改革")
    assert fp.bands[:2] == (2450759237669933355, 3289114722893256712)  # as stored since INDEX_VERSION 3


def test_paragraph_dropped_under_another_headline_is_one_story() -> None:
    full = "\n".join([SHARED_A, EVENT, SHARED_B, EVENT.replace("北碚", "北碚区")])
    shorter = "\n".join([SHARED_A, EVENT, SHARED_B])
    a, b = art("a.md", "北碚区推进应急管理机构改革", full), art("b.md", "北碚：机构改革与复工两不误", shorter)
    decision = dedup.decide(b, None, [cand(a)])
    assert isinstance(decision, dedup.DuplicateOf) and decision.how == "near" and decision.story_id == "story-x"


def test_reports_sharing_template_paragraphs_stay_apart() -> None:
    a = art("a.md", "北碚区推进应急管理机构改革", "\n".join([SHARED_A, SHARED_B, EVENT]))
    b = art("b.md", "云阳县调研应急管理机构改革工作", "\n".join([SHARED_A, SHARED_B, OTHER_EVENT]))
    assert isinstance(dedup.decide(b, None, [cand(a)]), dedup.New)


def test_short_identical_text_under_other_headlines_is_a_template_not_a_story() -> None:
    links = "基排辣评 | 招商银行股价被传闻压垮，银行主题基金恐难过年关\n基排辣评 | 加息落地！美股基金好日子到头了?"
    a = art("a.md", "基排辣评|苹果股价崩了！果粉基金恐受牵连", links)
    b = art("b.md", "基排辣评|有毒！一场矿难让煤炭基金成了白月光", links)
    assert isinstance(dedup.decide(b, None, [cand(a)]), dedup.New)
    same_headline = art("c.md", "基排辣评 | 苹果股价崩了！果粉基金恐受牵连", links)
    assert isinstance(dedup.decide(same_headline, None, [cand(a)]), dedup.DuplicateOf)
    # the same short text from another source is a re-post (a wire item), whatever its headline
    other_source = replace(b, source="wire")
    assert isinstance(dedup.decide(other_source, None, [cand(a)]), dedup.DuplicateOf)


def test_same_headline_with_a_long_appendix_is_one_story() -> None:
    news = "\n".join([SHARED_A, EVENT])
    appendix = "\n".join(OTHER_EVENT.replace("云阳", f"第{i}县") for i in range(4))
    a = art("a.md", "发改委：放开放宽城市落户限制", news)
    b = art("b.md", "发改委：放开放宽城市落户限制", news + "\n" + appendix)
    assert isinstance(dedup.decide(b, None, [cand(a)]), dedup.DuplicateOf)
    retitled = art("c.md", "都市圈指导意见全文", news + "\n" + appendix)
    assert isinstance(dedup.decide(retitled, None, [cand(a)]), dedup.New)


def test_same_canonical_url_is_one_story_and_url_wins_over_text() -> None:
    a = art("a.md", "标题一", EVENT, link="http://x.cn/a?utm_medium=rss")
    b = art("b.md", "完全不同的标题", OTHER_EVENT, link="http://X.cn/a#comments")
    assert dedup.decide(b, None, [cand(a)]) == dedup.DuplicateOf("story-x", a.id, "url")


def test_stored_article_update_rules() -> None:
    a = art("a.md", "北碚区推进应急管理机构改革", EVENT)
    stored = dedup.Stored(a.content_hash, a.title, withdrawn=False)
    assert isinstance(dedup.decide(a, stored, []), dedup.Unchanged)
    # spacing and punctuation only: the content hash ignores them, so this is no change
    respaced = replace(a, title="北碚区 推进应急管理机构改革！", content_text=EVENT.replace("，", ", "))
    assert isinstance(dedup.decide(respaced, stored, []), dedup.Unchanged)
    edited = replace(a, content_hash="other")
    assert dedup.decide(edited, stored, []) == dedup.Update(text_changed=True)
    back = dedup.Stored(a.content_hash, a.title, withdrawn=True)
    assert dedup.decide(a, back, []) == dedup.Update(text_changed=False)


def test_disabled_near_duplicates_keep_exact_identity_only() -> None:
    off = dedup.Thresholds(enabled=False)
    a = art("a.md", "北碚区推进应急管理机构改革", "\n".join([SHARED_A, EVENT, SHARED_B]))
    b = art("b.md", "北碚区推进应急管理机构改革", "\n".join([SHARED_A, EVENT]))
    assert isinstance(dedup.decide(b, None, [cand(a)], off), dedup.New)


def test_fingerprint_has_a_band_per_row_group_and_the_title_key() -> None:
    fp = dedup.fingerprint(EVENT, "北碚区推进应急管理机构改革")
    assert len(fp.bands) == dedup.BANDS + 1 and fp.bands[dedup.TITLE_BAND] == dedup.title_key("北碚区推进应急管理机构改革")
    assert all(0 <= k < 2**63 for k in fp.bands)
    assert dedup.fingerprint(EVENT, "").bands == fp.bands[: dedup.BANDS]
    assert dedup.fingerprint("", "标题标题标题") == dedup.Fingerprint((), 0)


def test_near_identical_texts_share_bands_and_unrelated_do_not() -> None:
    a = dedup.fingerprint("\n".join([SHARED_A, EVENT, SHARED_B]))
    b = dedup.fingerprint("\n".join([SHARED_A, EVENT, SHARED_B + "（记者 张三）"]))
    c = dedup.fingerprint(OTHER_EVENT)
    assert len(set(a.bands) & set(b.bands)) >= 10
    assert not set(a.bands) & set(c.bands)


_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF)


@given(st.text(_CJK, min_size=0, max_size=300), st.lists(st.sampled_from([" ", "，", "。", "\n", "\u3000", "｜", "丨"]), max_size=20), st.randoms())
def test_shingles_ignore_spacing_and_punctuation(text: str, noise: list[str], rnd: object) -> None:
    chars = list(text)
    for mark in noise:
        chars.insert(rnd.randint(0, len(chars)), mark)  # type: ignore[attr-defined]
    noisy = "".join(chars)
    assert dedup.shingles(noisy) == dedup.shingles(text)
    assert dedup.fingerprint(noisy) == dedup.fingerprint(text)


@given(st.text(_CJK, min_size=1, max_size=200), st.text(_CJK, min_size=1, max_size=200))
def test_similarity_is_symmetric_and_bounded(x: str, y: str) -> None:
    a, b = dedup.shingles(x), dedup.shingles(y)
    s1, s2 = dedup.similarity(a, b), dedup.similarity(b, a)
    assert s1 == s2
    assert 0 <= s1.jaccard <= s1.containment <= 1 and 0 <= s1.extra <= 1
    if a:
        assert dedup.similarity(a, a).jaccard == 1.0
    else:  # nothing to compare (e.g. only a separator): never "the same"
        assert dedup.similarity(a, a) == dedup.Similarity(0.0, 0.0, 1.0)

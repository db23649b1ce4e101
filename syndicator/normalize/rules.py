"""Cleaning rules as data: the shipped defaults, and their compiled form.

Each list below is a list of regular expressions. ``NormalizeSettings`` (config.yaml ``normalize:``)
extends every list, or replaces it when ``replace_defaults: true``. A newsroom adds a site by adding
rules here or in its config, never by adding code.

Every pattern is matched against one *cleaned* line (whitespace normalized and stripped) unless said
otherwise. Named groups carry the extracted value (``channel``, ``name``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import NormalizeSettings

_REGIONS = (
    "北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|"
    "海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门|青岛|深圳|大连|宁波|厦门"
)

#: Title suffixes, anchored at the end of the title. Applied repeatedly (``…_试用中心_凤凰时尚``); the
#: ``channel`` group of the first (outermost) match becomes ``Article.channel``.
TITLE_SUFFIXES: tuple[str, ...] = (
    r"——(?:凤凰网)?(?P<channel>房产\w{1,6})$",  # …——房产北京, …——凤凰网房产北京
    r"_(?P<channel>\w{1,6}频道)$",  # …_重庆频道, …_文化频道
    rf"(?<=\S)(?P<channel>(?:{_REGIONS})频道)$",  # …生活四川频道 (glued, region names only)
    r"_(?P<channel>(?:手机)?凤凰网\w{0,4})$",  # …_凤凰网, …_手机凤凰网, …_凤凰网科技
    r"_(?P<channel>凤凰\w{0,4})$",  # …_凤凰, …_凤凰时尚, …_凤凰湖北
    r"_(?P<channel>中国网|中金在线|华人精英女性首选时尚门户|启迪你的视界)$",
    r"_(?P<channel>新闻中心|市场)$",
    r"_(?:试用中心|资讯频道|个股资讯)$",  # inner parts of multi-part suffixes
    r"\s*_\s*$",  # a dangling underscore
    r"\s*[-|｜]\s*(?P<channel>凤凰网\w{0,4})$",  # 凤凰资讯-凤凰网
)

#: Lines dropped wherever they are.
BOILERPLATE_LINES: tuple[str, ...] = (
    r"^打开微信，点击底部的“发现”，?$",  # yicai share prompt
    r"^使用“扫一扫”即可将网页分享至朋友圈。?$",
    r"^微信扫一扫二维码$",
    r"^本文仅代表作者个人观点，与凤凰网无关。",
    r"^免责声明$",
    r"^\(?（?本文来源[:：].{0,30}$",
)

#: Editor lines: ``[责任编辑：X]``, ``（责任编辑：X）``, ``责任编辑：X`` → author X; the line is dropped.
EDITOR_LINES: tuple[str, ...] = (
    r"^[\[【（(]?\s*责任编辑\s*[：:]\s*(?P<name>[^\]】）)]{1,20}?)(?:\s+[A-Z]{1,5}\d{2,5})?\s*[\]】）)]?$",
)

#: After a run of lines matching these (the share prompts), the next line is the reporter's byline
#: when it is short and is not a sentence.
BYLINE_AFTER: tuple[str, ...] = (r"^使用“扫一扫”即可将网页分享至朋友圈。?$",)

#: Trailing page furniture: removed from the end of the body (only as a trailing run of lines).
FOOTER_LINES: tuple[str, ...] = (
    r"^第一财经$",
    r"^APP$",
    r"^日报微博$",
    r"^微信服务号$",
    r"^微信订阅号$",
    r"^一财资讯$",
)

#: The article ends at a line matching one of these: it and everything after it is page furniture.
END_LINES: tuple[str, ...] = (
    r"^标签[：:]",
    r"^凤凰网房产官方微信$",
    r"^相关资讯$",
    r"^网罗天下$",
    r"^凤凰网房产\w{1,4}站?$",
    r"^凤凰房产\w{1,4}站$",
    r"^免责声明$",
)

#: Front-matter date values that are known page text, not dates (they never become a date anyway:
#: listing them only silences the ``no_date`` lint for expected cases).
JUNK_DATES: tuple[str, ...] = (r"^楼盘价格\s*[:：]", r"^团购时间[:：]", r"^\d+RMB$", r"^[待在]售$")

#: ``author`` values that name the publisher (not a person): → ``Article.publisher``.
PUBLISHERS: tuple[str, ...] = (
    r"^第一财经$",
    r"^一财网?$",
    r"^凤凰网\w{0,4}$",
    r"^新华社$",
    r"^中国结算$",
    r"^\w{2,10}网站$",
    r"^\w{1,6}发布$",
)

#: ``author`` values that name the uploading account: → ``Article.submitter``.
SUBMITTERS: tuple[str, ...] = (r"^wetech$",)

#: Lines holding the original headline: ``原标题：X`` or ``原标题：`` followed by the headline line.
ORIGINAL_TITLE = r"^[（(]?原标题\s*[：:；;]\s*(?P<title>.*?)\s*(?:(?<=[^（(].)[）)])?$"

#: Sites whose share prompts mean "related-article snippets follow the article behind ≥2 blank lines".
RELATED_AFTER_BLANKS: tuple[str, ...] = BYLINE_AFTER


def _join(patterns: list[str] | tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns))


@dataclass(frozen=True, slots=True)
class CompiledRules:
    title_suffixes: tuple[re.Pattern[str], ...]
    boilerplate: re.Pattern[str] | None
    editor: tuple[re.Pattern[str], ...]
    byline_after: re.Pattern[str] | None
    footer: re.Pattern[str] | None
    end: re.Pattern[str] | None
    junk_dates: re.Pattern[str] | None
    publishers: re.Pattern[str] | None
    submitters: re.Pattern[str] | None
    original_title: re.Pattern[str]
    editor_ends_article: bool
    min_image_size: int
    summary_chars: int


def _merge(defaults: tuple[str, ...], extra: list[str], replace: bool) -> tuple[str, ...]:
    return tuple(extra) if replace else defaults + tuple(extra)


_CACHE: dict[tuple[object, ...], CompiledRules] = {}


def compile_rules(settings: NormalizeSettings) -> CompiledRules:
    """The compiled rules for one settings object, cached (settings are frozen, so by value)."""
    key = (
        settings.replace_defaults,
        tuple(settings.title_suffixes),
        tuple(settings.boilerplate_lines),
        tuple(settings.editor_lines),
        tuple(settings.byline_after),
        tuple(settings.footer_lines),
        tuple(settings.end_lines),
        tuple(settings.junk_dates),
        tuple(settings.publishers),
        tuple(settings.submitters),
        settings.editor_ends_article,
        settings.min_image_size,
        settings.summary_chars,
    )
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    r = settings.replace_defaults
    compiled = CompiledRules(
        title_suffixes=tuple(re.compile(p) for p in _merge(TITLE_SUFFIXES, settings.title_suffixes, r)),
        boilerplate=_join(_merge(BOILERPLATE_LINES, settings.boilerplate_lines, r)),
        editor=tuple(re.compile(p) for p in _merge(EDITOR_LINES, settings.editor_lines, r)),
        byline_after=_join(_merge(BYLINE_AFTER, settings.byline_after, r)),
        footer=_join(_merge(FOOTER_LINES, settings.footer_lines, r)),
        end=_join(_merge(END_LINES, settings.end_lines, r)),
        junk_dates=_join(_merge(JUNK_DATES, settings.junk_dates, r)),
        publishers=_join(_merge(PUBLISHERS, settings.publishers, r)),
        submitters=_join(_merge(SUBMITTERS, settings.submitters, r)),
        original_title=re.compile(ORIGINAL_TITLE),
        editor_ends_article=settings.editor_ends_article,
        min_image_size=settings.min_image_size,
        summary_chars=settings.summary_chars,
    )
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = compiled
    return compiled

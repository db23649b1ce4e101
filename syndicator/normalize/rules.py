"""Cleaning rules as data: the shipped defaults (``rules.yaml`` beside this module) and their compiled form.

``rules.yaml`` holds every default rule with a real example line from the archive it was written for.
``NormalizeSettings`` (config.yaml ``normalize:``) extends every list, or replaces it when
``replace_defaults: true``. A newsroom adds a site by adding rules, never by adding code.

Every pattern is matched against one *cleaned* line (whitespace normalized and stripped) unless said
otherwise. Named groups carry the extracted value (``channel``, ``name``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from ..config import NormalizeSettings

#: The rule lists (config keys under ``normalize:``), in the order ``rules.yaml`` has them.
RULE_LISTS = (
    "title_suffixes",
    "boilerplate_lines",
    "editor_lines",
    "byline_lines",
    "lead_bylines",
    "byline_after",
    "footer_lines",
    "end_lines",
    "junk_dates",
    "publishers",
    "submitters",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One shipped rule: its pattern and the real line it was written for."""

    pattern: str
    example: str


def load_defaults() -> dict[str, tuple[Rule, ...]]:
    """The shipped rules from ``rules.yaml`` (read once at import; a broken file is a packaging bug)."""
    data = yaml.safe_load(files(__package__).joinpath("rules.yaml").read_text(encoding="utf-8"))
    out: dict[str, tuple[Rule, ...]] = {}
    for name in RULE_LISTS:
        rules = tuple(Rule(str(r["pattern"]), str(r["example"])) for r in data.get(name) or ())
        for r in rules:
            re.compile(r.pattern)
        out[name] = rules
    unknown = set(data) - set(RULE_LISTS)
    if unknown:
        raise ValueError(f"rules.yaml: unknown rule lists {sorted(unknown)}")
    return out


DEFAULTS = load_defaults()


def _patterns(name: str) -> tuple[str, ...]:
    return tuple(r.pattern for r in DEFAULTS[name])


TITLE_SUFFIXES = _patterns("title_suffixes")
BOILERPLATE_LINES = _patterns("boilerplate_lines")
EDITOR_LINES = _patterns("editor_lines")
BYLINE_LINES = _patterns("byline_lines")
LEAD_BYLINES = _patterns("lead_bylines")
BYLINE_AFTER = _patterns("byline_after")
FOOTER_LINES = _patterns("footer_lines")
END_LINES = _patterns("end_lines")
JUNK_DATES = _patterns("junk_dates")
PUBLISHERS = _patterns("publishers")
SUBMITTERS = _patterns("submitters")

#: Lines holding the original headline: ``原标题：X`` or ``原标题：`` followed by the headline line.
ORIGINAL_TITLE = r"^[（(]?原标题\s*[：:；;]\s*(?P<title>.*?)\s*(?:(?<=[^（(].)[）)])?$"


def _join(patterns: list[str] | tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns))


@dataclass(frozen=True, slots=True)
class CompiledRules:
    title_suffixes: tuple[re.Pattern[str], ...]
    boilerplate: re.Pattern[str] | None
    editor: tuple[re.Pattern[str], ...]
    byline_lines: tuple[re.Pattern[str], ...]
    lead_bylines: tuple[re.Pattern[str], ...]
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
    related_blank_lines: int = 2


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
        tuple(settings.byline_lines),
        tuple(settings.lead_bylines),
        settings.related_blank_lines,
    )
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    r = settings.replace_defaults
    compiled = CompiledRules(
        title_suffixes=tuple(re.compile(p) for p in _merge(TITLE_SUFFIXES, settings.title_suffixes, r)),
        boilerplate=_join(_merge(BOILERPLATE_LINES, settings.boilerplate_lines, r)),
        editor=tuple(re.compile(p) for p in _merge(EDITOR_LINES, settings.editor_lines, r)),
        byline_lines=tuple(re.compile(p) for p in _merge(BYLINE_LINES, settings.byline_lines, r)),
        lead_bylines=tuple(re.compile(p) for p in _merge(LEAD_BYLINES, settings.lead_bylines, r)),
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
        related_blank_lines=settings.related_blank_lines,
    )
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = compiled
    return compiled

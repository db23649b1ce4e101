"""Tags: front matter + channel + keyword rules; ASCII slugs."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ..config import TagSettings
from .text import clean_inline

_SPLIT = re.compile(r"[,，、;；\s]+")
_NON_SLUG = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=4096)
def slugify(name: str) -> str:
    """ASCII, stable: pinyin for Chinese ('安全生产' → 'an-quan-sheng-chan'), lowercase, [a-z0-9-]."""
    # imported on first use: pypinyin loads its phrase tables at import (about a second), and most syncs
    # (one changed post, known tags) never need a new slug
    from pypinyin import Style, lazy_pinyin

    parts = lazy_pinyin(name, style=Style.NORMAL, errors="default")
    words: list[str] = []
    for part in parts:
        ascii_part = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode("ascii").lower()
        words.extend(w for w in _NON_SLUG.split(ascii_part) if w)
    slug = "-".join(words)
    if not slug:  # nothing transliterable (emoji, symbols): a stable hex slug instead
        import hashlib

        slug = "t-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return slug


def split_tags(value: Any) -> list[str]:
    """A front-matter ``tags``/``categories`` value (empty, list, or a string) → tag names."""
    if value is None:
        return []
    items: Iterable[Any] = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        if item is None or isinstance(item, dict | list | tuple):
            continue
        for piece in _SPLIT.split(str(item)):
            name = clean_inline(piece).strip("#[]{}\"'")
            if name and name.lower() not in ("none", "null"):
                out.append(name[:50])
    return out


class _Matcher:
    __slots__ = ("rules",)

    def __init__(self, rules: dict[str, list[str]]) -> None:
        compiled: list[tuple[str, re.Pattern[str]]] = []
        for tag, words in rules.items():
            alts: list[str] = []
            for w in words:
                if len(w) >= 2 and w.startswith("/") and w.endswith("/"):
                    try:
                        re.compile(w[1:-1])
                        alts.append(f"(?:{w[1:-1]})")
                    except re.error:
                        continue
                elif w:
                    alts.append(re.escape(w))
            if alts:
                compiled.append((tag, re.compile("|".join(alts))))
        self.rules = tuple(compiled)

    def match(self, text: str) -> list[str]:
        return [tag for tag, pattern in self.rules if pattern.search(text)]


_MATCHERS: dict[tuple[tuple[str, tuple[str, ...]], ...], _Matcher] = {}


def _matcher(settings: TagSettings) -> _Matcher:
    key = tuple((k, tuple(v)) for k, v in settings.rules.items())
    m = _MATCHERS.get(key)
    if m is None:
        if len(_MATCHERS) > 64:
            _MATCHERS.clear()
        m = _MATCHERS[key] = _Matcher(settings.rules)
    return m


def build_tags(
    explicit: Iterable[str], channel: str | None, title: str, body: str, settings: TagSettings
) -> tuple[str, ...]:
    """Front-matter tags, then the channel's tag, then rule tags; deduplicated, order kept."""
    names: list[str] = list(explicit)
    if channel:
        names.append(settings.channels.get(channel, channel))
    names.extend(_matcher(settings).match(title + "\n" + body))
    seen: set[str] = set()
    out: list[str] = []
    for n in names:
        n = clean_inline(n)
        if n and n not in seen:
            seen.add(n)
            out.append(n)
    return tuple(out)

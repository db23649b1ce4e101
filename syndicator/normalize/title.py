"""Titles: channel suffixes removed (rules from ``rules.py``); the removed suffix names the channel."""

from __future__ import annotations

import re

from .rules import CompiledRules

_TITLE_MAX = 300
_UNKNOWN_SUFFIX = re.compile(r"_[^_\s]{1,10}$")


def strip_title(title: str, rules: CompiledRules) -> tuple[str, str | None, bool]:
    """Remove channel suffixes (repeatedly); (clean title, channel of the outermost suffix, unknown?)."""
    title = title[:_TITLE_MAX].strip()
    channel: str | None = None
    changed = True
    while changed:
        changed = False
        for pattern in rules.title_suffixes:
            m = pattern.search(title)
            if m and m.start() > 0:
                rest = title[: m.start()].rstrip(" _-—|｜")
                if not rest:
                    continue
                found = m.groupdict().get("channel")
                if channel is None and found:
                    channel = found.strip() or None
                title = rest
                changed = True
                break
    unknown = bool(_UNKNOWN_SUFFIX.search(title))
    return title, channel, unknown

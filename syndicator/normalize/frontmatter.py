"""Tolerant front-matter parsing: broken YAML, stacked blocks, missing blocks.

The text given here is already decoded, BOM-free, with ``\\n`` newlines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

# the C loader is ~10× faster; fall back to the pure-Python one where libyaml is missing
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_FENCE = re.compile(r"^[ \t]*---[ \t]*$")
_KEY_LINE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*:(.*)$")
_LIST_ITEM = re.compile(r"^\s*-\s+(.*)$")
_KNOWN = frozenset({"title", "date", "author", "tags", "categories", "updated", "permalink", "layout"})
_MAX_BLOCK_LINES = 60


@dataclass(slots=True)
class Block:
    """One front-matter block and the body text that follows it."""

    meta: dict[str, Any]
    body: str
    problems: list[str] = field(default_factory=list)


def _is_block(lines: list[str], start: int) -> int | None:
    """If ``lines[start]`` opens a front-matter block, the index of its closing fence."""
    keys = 0
    known = False
    for j in range(start + 1, min(len(lines), start + 1 + _MAX_BLOCK_LINES)):
        line = lines[j]
        if _FENCE.match(line):
            return j if keys and known else None
        if not line.strip():
            continue
        m = _KEY_LINE.match(line)
        if m:
            keys += 1
            known = known or m.group(1).lower() in _KNOWN
            continue
        if _LIST_ITEM.match(line) or line[:1] in (" ", "\t"):
            continue  # YAML list item or continuation
        return None
    return None


def parse_meta(text: str) -> tuple[dict[str, Any], bool]:
    """YAML mapping → dict; on broken YAML, line-by-line ``key: value``. Returns (meta, recovered)."""
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except Exception:  # any YAML failure (scanner, constructor, bad dates) → fallback
        data = None
    else:
        if isinstance(data, dict):
            return {str(k).strip().lower(): v for k, v in data.items()}, False
        if data is None and not text.strip():
            return {}, False
    return _lines_meta(text), True


def _lines_meta(text: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    last: str | None = None
    for line in text.split("\n"):
        m = _KEY_LINE.match(line)
        if m:
            last = m.group(1).lower()
            value = m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            meta[last] = value
            continue
        item = _LIST_ITEM.match(line)
        if item and last is not None:
            prev = meta.get(last)
            items = prev if isinstance(prev, list) else ([prev] if prev else [])
            items.append(item.group(1).strip())
            meta[last] = items
    return meta


def split_blocks(text: str) -> list[Block]:
    """The file's front-matter blocks, each with its body; the last one is the current version.

    A file without front matter is one block with empty meta. A file holding several stacked blocks
    (a scraper that appended instead of overwriting) yields one block per version.
    """
    lines = text.split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not _FENCE.match(lines[i]):
        return [Block(meta={}, body=text, problems=["no_front_matter"])]
    starts: list[tuple[int, int]] = []  # (open fence, close fence)
    j = i
    while j < len(lines):
        if _FENCE.match(lines[j]):
            end = _is_block(lines, j)
            if end is not None:
                starts.append((j, end))
                j = end + 1
                continue
            if not starts:  # an opening fence that never closes: treat the lines as broken meta
                return [_unclosed(lines, i)]
        j += 1
    if not starts:
        return [_unclosed(lines, i)]
    blocks: list[Block] = []
    for n, (open_, close) in enumerate(starts):
        body_end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        meta, recovered = parse_meta("\n".join(lines[open_ + 1 : close]))
        blocks.append(
            Block(
                meta=meta,
                body="\n".join(lines[close + 1 : body_end]),
                problems=["broken_yaml_recovered"] if recovered else [],
            )
        )
    return blocks


def _unclosed(lines: list[str], i: int) -> Block:
    """``---`` then key lines but no closing fence: read leading ``key: value`` lines, rest is body."""
    k = i + 1
    while k < len(lines) and (not lines[k].strip() or _KEY_LINE.match(lines[k])):
        k += 1
    meta = _lines_meta("\n".join(lines[i + 1 : k]))
    if not meta:
        return Block(meta={}, body="\n".join(lines[i + 1 :]), problems=["no_front_matter"])
    return Block(meta=meta, body="\n".join(lines[k:]), problems=["unclosed_front_matter"])

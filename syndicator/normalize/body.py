"""Body cleaning: lines → paragraphs, with the boilerplate rules applied (rules come from ``rules.py``)."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from .rules import CompiledRules
from .sanitize import image, paragraph, sanitize
from .text import IMG_TAG, clean_inline, clean_line, is_blank, is_tracking, parse_img

MORE = re.compile(r"<!--\s*more\s*-->", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SENTENCE_PUNCT = re.compile(r"[。，,；;！!？?：:、“”\"]")
_SAFE_SRC = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
_MIN_PREFIX = 8  # a shorter paragraph is not judged a truncated copy of another
_MAX_BYLINES = 4  # at most this many reporters' name lines lead a body
_RELATED_MAX = 12  # related-article snippets after the article: at most this many lines (footer excluded)


@dataclass(slots=True)
class Body:
    paragraphs: list[tuple[str, str]] = field(default_factory=list)  # (kind 'p'|'img', text or html)
    author: str | None = None
    original_title: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [t for kind, t in self.paragraphs if kind == "p"]

    def html(self) -> str:
        return sanitize("".join(paragraph(t) if kind == "p" else t for kind, t in self.paragraphs))

    def text(self) -> str:
        return "\n\n".join(self.texts)


def _key(text: str) -> str:
    """Comparison key of a cleaned line: no spaces, no trailing ellipsis."""
    k = text.replace(" ", "")
    while k.endswith(("…", "...", "。。。")):
        k = k.rstrip("…").removesuffix("...").removesuffix("。。。")
    return k


def _is_byline(line: str) -> bool:
    return 0 < len(line) <= 16 and not _SENTENCE_PUNCT.search(line) and not any(c.isdigit() for c in line)


def _blank_run_cut(lines: list[str], rules: CompiledRules) -> list[str]:
    """Cut the related-article snippets a site appends after the article behind whitespace-only lines.

    Two shapes (yicai): after a share prompt, the first run of ≥2 blank lines that follows some text;
    and anywhere, the *last* run of ≥``related_blank_lines`` lines holding only whitespace (not empty
    lines: the scraper writes the page's spacer lines as spaces), when at most ``_RELATED_MAX`` lines
    (footer lines not counted) follow it and none of them is an editor line.
    """
    lines = _share_prompt_cut(lines, rules)
    need = rules.related_blank_lines
    if need <= 0:
        return lines
    end = len(lines)
    i = end - 1
    tail = 0
    while i >= 0:
        line = lines[i]
        if line and is_blank(line):
            j = i
            while j >= 0 and is_blank(lines[j]):
                j -= 1
            run = sum(1 for x in lines[j + 1 : i + 1] if x)
            if run >= need:
                text_before = sum(1 for x in lines[: j + 1] if not is_blank(x))
                if text_before >= 1 and tail <= _RELATED_MAX and not _has_editor(lines[i + 1 :], rules):
                    return lines[: j + 1]
                return lines
            i = j
            continue
        if not is_blank(line) and not (rules.footer is not None and rules.footer.search(clean_line(line))):
            tail += 1
            if tail > _RELATED_MAX + 12:  # a long tail is the article itself: stop looking
                return lines
        i -= 1
    return lines


def _has_editor(lines: list[str], rules: CompiledRules) -> bool:
    for raw in lines:
        line = clean_line(raw)
        if line and any(p.match(line) for p in rules.editor):
            return True
    return False


def _share_prompt_cut(lines: list[str], rules: CompiledRules) -> list[str]:
    """After a share prompt (yicai layout), related snippets follow the article behind ≥2 blank lines."""
    if rules.byline_after is None:
        return lines
    start = None
    for i, line in enumerate(lines[:40]):
        if rules.byline_after.search(clean_line(line)):
            start = i
            break
    if start is None:
        return lines
    text_seen = 0
    blanks = 0
    for i in range(start + 1, len(lines)):
        if is_blank(lines[i]):
            blanks += 1
            if blanks >= 2 and text_seen >= 2:
                return lines[: i - 1]
        else:
            blanks = 0
            text_seen += 1
    return lines


def _split_title_lead(x: str, later: list[str]) -> str | None:
    """``原标题：<title><truncated lead>`` → <title>, when the tail is a prefix of a later paragraph."""
    for p in later:
        if len(p) < _MIN_PREFIX:
            continue
        probe = p[:_MIN_PREFIX]
        i = x.find(probe)
        while i > 0:
            tail = _key(x[i:])
            if _key(p).startswith(tail):
                return x[:i].strip() or None
            i = x.find(probe, i + 1)
    return None


def clean_lines(
    lines: list[str], rules: CompiledRules, *, teaser: list[str] | None = None, lead_bylines: bool = False
) -> Body:
    """Lines → paragraphs. ``lead_bylines``: name lines before the first paragraph are reporters' bylines."""
    body = Body()
    bylines: list[str] = []  # reporters named before the text (after a share prompt, or leading the body)
    lead_open = True
    lines = _blank_run_cut(lines, rules)
    split_titles: list[str] = []
    inline_titles: list[str] = []
    items: list[tuple[str, str]] = []
    want_title = False
    want_byline = False
    all_lines = [(True, t) for t in (teaser or [])] + [(False, t) for t in lines]
    for n, (is_teaser, raw) in enumerate(all_lines):
        if want_title and n == len(teaser or []):
            want_title = (
                False  # `原标题：` closing the teaser: its headline is not the main text's first line
            )
        line = clean_line(raw)
        if not line:
            continue
        if not is_teaser and rules.end is not None and rules.end.search(line):
            break
        if want_title:
            want_title = False
            if len(line) <= 100 and "<" not in line and not rules.original_title.match(line):
                split_titles.append(line)
                continue
        m = rules.original_title.match(line)
        if m:
            t = m.group("title").strip()
            if t:
                inline_titles.append(t)
            else:
                want_title = True
            continue
        ed = next((e for pat in rules.editor if (e := pat.match(line))), None)
        if ed is not None:
            name = ed.groupdict().get("name")
            if name and name.strip():
                body.author = name.strip()
            if rules.editor_ends_article and not is_teaser:
                break
            continue
        by = next((b for pat in rules.byline_lines if (b := pat.match(line))), None)
        if by is not None:
            name = by.groupdict().get("name")
            if name and name.strip():
                body.author = name.strip()
            want_byline = False
            continue
        if is_teaser:
            continue  # the teaser is an excerpt: metadata may come from it, paragraphs never do
        if rules.boilerplate is not None and rules.boilerplate.search(line):
            if rules.byline_after is not None and rules.byline_after.search(line):
                want_byline = True
            continue
        if want_byline:
            want_byline = False
            if _is_byline(line):
                bylines.append(line)
                continue
        if lead_open and (bylines or lead_bylines) and len(bylines) < _MAX_BYLINES and "<" not in line:
            lead = next((b for pat in rules.lead_bylines if (b := pat.fullmatch(line))), None)
            if lead is not None and not any(kind == "p" for kind, _t in items):
                bylines.append(lead.groupdict().get("name") or line)
                continue
        if "<" not in line:
            lead_open = False  # the text has begun
        if "<" in line and IMG_TAG.search(line):
            for n, piece in enumerate(IMG_TAG.split(line)):
                piece = clean_inline(_COMMENT.sub("", piece))
                if piece:
                    items.append(("p", piece))
                if n < len(imgs := IMG_TAG.findall(line)):
                    img = parse_img(imgs[n])
                    if img is None or not _SAFE_SRC.match(img.src) or is_tracking(img, rules.min_image_size):
                        continue
                    items.append(("img", image(img)))
            continue
        if "<!--" in line:
            line = clean_inline(_COMMENT.sub("", line))
            if not line:
                continue
        items.append(("p", line))
    if bylines and body.author is None:
        body.author = "、".join(dict.fromkeys(bylines))
    # trailing page furniture
    if rules.footer is not None:
        while items and items[-1][0] == "p" and rules.footer.search(items[-1][1]):
            items.pop()
    texts = [t for kind, t in items if kind == "p"]
    if split_titles:
        body.original_title = split_titles[0]
    for t in inline_titles:
        derived = _split_title_lead(t, texts)
        cand = derived if derived else t
        if body.original_title is None:
            body.original_title = cand
    body.paragraphs = _dedupe(items, body.original_title)
    return body


def _dedupe(items: list[tuple[str, str]], original_title: str | None) -> list[tuple[str, str]]:
    """Each paragraph once; drop paragraphs that are truncated copies of a later one (teasers, leads)."""
    keys = [_key(t) if kind == "p" else t for kind, t in items]
    order = sorted(range(len(items)), key=lambda i: keys[i])
    sorted_keys = [keys[i] for i in order]
    kot = _key(original_title) if original_title else ""

    def truncated_copy(i: int, k: str) -> bool:
        if len(k) < _MIN_PREFIX:
            return False
        pos = bisect.bisect_left(sorted_keys, k)
        while pos < len(sorted_keys) and sorted_keys[pos].startswith(k):
            j = order[pos]
            if j > i and items[j][0] == "p" and len(sorted_keys[pos]) > len(k):
                return True
            pos += 1
        return False

    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for i, (kind, _t) in enumerate(items):
        k = keys[i]
        if k in seen:
            continue
        if kind == "p":
            if truncated_copy(i, k):
                continue
            if kot and k.startswith(kot) and len(k) > len(kot) and truncated_copy(i, k[len(kot) :]):
                continue
        seen.add(k)
        out.append(items[i])
    return out


def split_more(text: str) -> tuple[list[str], list[str]]:
    """(teaser lines, main lines): the excerpt before ``<!-- more -->`` and the full text after it."""
    parts = MORE.split(text, maxsplit=1)
    if len(parts) == 2:
        teaser, main = parts
        if any(not is_blank(x) for x in main.split("\n")):
            return teaser.split("\n"), main.split("\n")
        return [], teaser.split("\n")
    return [], text.split("\n")

"""``syndicator lint``: what the normalizer finds in an archive folder, per file, without a database.

Reads every post file the archive source would read, runs the same normalization (``inspect_item``)
and turns its problem codes into one line per problem that names the file and says what was found
and what syndicator does about it (e.g. which date it falls back to). Files with the same text are
reported as duplicates of the first one. A file that cannot become an article at all is ``rejected``;
the command exits 1 when there is one, so a newsroom can run it in its own CI.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import NormalizeSettings, TagSettings
from .normalize import inspect_item
from .normalize.dates import zone
from .normalize.frontmatter import split_blocks
from .normalize.text import Undecodable, clean_inline, decode, normalize_newlines
from .sources.archive import MAX_FILE_BYTES, key_for, walk
from .types import Article, RawItem

#: Problem kinds, in the order the summary lists them, with what each means.
KINDS: dict[str, str] = {
    "rejected": "no article at all (binary, undecodable, empty, or no title and no body)",
    "no_date": "the date field holds no date: the date comes from a fallback",
    "empty_body": "a title but no body text",
    "no_title": "no title: the file name (or the first words) is used",
    "broken_yaml": "front matter is not valid YAML: read line by line",
    "no_front_matter": "no front matter block",
    "unclosed_front_matter": "front matter without its closing ---",
    "stacked_front_matter": "several front matter blocks: earlier versions of one post",
    "non_utf8": "not UTF-8: decoded from another encoding",
    "unknown_title_suffix": "the title ends in a suffix no rule knows",
    "duplicate": "the same text as another file",
}


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    kind: str
    detail: str

    def line(self) -> str:
        return f"{self.file}: {self.kind}: {self.detail}"


@dataclass(slots=True)
class LintReport:
    files: int = 0
    articles: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(1 for p in self.problems if p.kind == "rejected")

    def summary(self) -> dict[str, int]:
        """Files per problem kind (a kind is counted once per file)."""
        per_kind = Counter(kind for _file, kind in {(p.file, p.kind) for p in self.problems})
        order = [k for k in KINDS if k in per_kind] + sorted(k for k in per_kind if k not in KINDS)
        return {k: per_kind[k] for k in order}

    def table(self) -> str:
        rows = self.summary()
        width = max([len("problem"), *(len(k) for k in rows)])
        out = [f"{'problem':<{width}}  files"]
        out += [f"{k:<{width}}  {n:>5}" for k, n in rows.items()]
        out.append(f"{'files read':<{width}}  {self.files:>5}")
        out.append(f"{'articles':<{width}}  {self.articles:>5}")
        return "\n".join(out)

    def as_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "articles": self.articles,
            "rejected": self.rejected,
            "problems": [{"file": p.file, "kind": p.kind, "detail": p.detail} for p in self.problems],
            "summary": self.summary(),
        }


def _local(value: datetime, tz: str) -> str:
    return value.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def _date_field(data: bytes) -> str:
    """The current version's ``date:`` value as written (for the message)."""
    try:
        text, _enc = decode(data)
    except Undecodable:
        return ""
    meta = split_blocks(normalize_newlines(text))[-1].meta
    value = meta.get("date")
    return "" if value is None else clean_inline(str(value))


def _problems(name: str, data: bytes, article: Article | None, codes: list[str], tz: str) -> Iterator[Problem]:
    unexpected = "junk_date" in codes  # a date field holding text that no junk_dates rule knows
    for code in codes:
        kind, _, arg = code.partition(":")
        if kind == "rejected":
            yield Problem(name, "rejected", arg or "not an article")
        elif kind == "no_date" and article is not None:
            shown = _date_field(data)
            what = "no date field"
            if shown:
                what = f"date field {shown!r} holds no date" + ("" if unexpected else " (known page text)")
            fallback = {
                "body": "the date stated in the body's opening",
                "file_mtime": "the file's modification time",
                "fetched": "the time it was fetched",
            }.get(arg, "none found: 1970-01-01")
            yield Problem(name, "no_date", f"{what}; using {fallback} ({_local(article.published, tz)})")
        elif kind == "junk_date":
            continue  # folded into no_date
        elif kind == "empty_body":
            yield Problem(name, "empty_body", "a title but no body text; stored with an empty body")
        elif kind == "no_title" and article is not None:
            yield Problem(name, "no_title", f"no title; using {article.title!r}")
        elif kind == "broken_yaml_recovered":
            yield Problem(name, "broken_yaml", "front matter is not valid YAML; read as key: value lines")
        elif kind in ("no_front_matter", "unclosed_front_matter"):
            yield Problem(name, kind, KINDS[kind])
        elif kind == "stacked_front_matter" and article is not None:
            n = len(article.earlier_versions)
            yield Problem(name, kind, f"{n + 1} front matter blocks; the last is current, the others are kept as earlier versions")
        elif kind == "non_utf8":
            yield Problem(name, kind, f"decoded as {arg}; save it as UTF-8")
        elif kind == "unknown_title_suffix" and article is not None:
            yield Problem(name, kind, f"title {article.title!r} ends in a suffix no title_suffixes rule knows")
        else:
            yield Problem(name, kind, arg or kind)


def lint_folder(
    root: Path, rules: NormalizeSettings, tags: TagSettings, *, timezone: str = "UTC", label: str | None = None
) -> LintReport:
    """Normalize every post file under ``root`` (nothing is stored) and collect the problems."""
    report = LintReport()
    shown = label if label is not None else str(root)
    first_by_hash: dict[str, str] = {}
    for rel, full in walk(root):
        report.files += 1
        key = key_for(rel)
        name = f"{shown.rstrip('/')}/{key}"
        try:
            st = os.stat(full)
            if st.st_size > MAX_FILE_BYTES:
                report.problems.append(Problem(name, "rejected", f"file too large ({st.st_size} bytes)"))
                continue
            with open(full, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            report.problems.append(Problem(name, "rejected", f"cannot read: {exc.strerror or exc}"))
            continue
        mtime = datetime.fromtimestamp(st.st_mtime, UTC)
        raw = RawItem(source="lint", key=key, timezone=timezone, data=data, path=key, mtime=mtime)
        article, codes = inspect_item(raw, rules, tags)
        report.problems.extend(_problems(name, data, article, codes, timezone))
        if article is None:
            continue
        report.articles += 1
        if article.content_text:
            first = first_by_hash.setdefault(article.content_hash, name)
            if first != name:
                report.problems.append(Problem(name, "duplicate", f"same text as {first}"))
    return report

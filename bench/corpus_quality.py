"""Quality report over a real archive folder: ``python -m bench.corpus_quality PATH [--json]``.

Syncs the folder into a temporary SQLite database through the real pipeline (archive source → normalize
→ dedup → storage, no rendering), reads the stored articles back the way ``syndicator articles --json``
does, and measures what is left to clean. The checks here are written independently of the normalizer
(own patterns, read from the raw files), so they measure it rather than repeat it.

Printed figures (over all posts): files read, articles stored, files rejected by reason, and the share
of articles with residual boilerplate, a repeated teaser, a repeated paragraph, a leftover channel
suffix, an author found where the file names one, a related-article snippet left, a date exactly as
the front matter states it, and dates by ``date_source``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from syndicator import config as config_mod
from syndicator.normalize.frontmatter import split_blocks
from syndicator.sources.archive import walk
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

TIMEZONE = "Asia/Shanghai"

# ---------------------------------------------------------------- independent checks

#: Markers that must never survive into a stored body (text or HTML).
MARKERS: dict[str, re.Pattern[str]] = {
    "原标题": re.compile(r"原标题"),
    "责任编辑": re.compile(r"责任编辑"),
    "more": re.compile(r"<!--\s*more\s*-->|&lt;!--", re.IGNORECASE),
    "tracking_image": re.compile(
        r"<img\b[^>]*(?:_w[1-2]?\d_h[1-2]?\d\b|\b(?:width|height)=\"?[0-2]?\d\b)[^>]*>", re.IGNORECASE
    ),
    "share_prompt": re.compile(r"打开微信，点击底部的“发现”|使用“扫一扫”即可将网页分享至朋友圈"),
    "footer": re.compile(r"^(?:第一财经|APP|日报微博|微信服务号|微信订阅号|一财资讯)$", re.MULTILINE),
    "column_label": re.compile(r"^(?:绝对值|一财大政|一财汽车|社论|[（(]绝对值.{0,6}[）)])$", re.MULTILINE),
}
#: A channel suffix left at the end of a title (a channel's own page, e.g. ``娱乐频道``, is exempt).
CHANNEL_SUFFIX = re.compile(r"(?:_\w{0,8}频道|频道|——(?:凤凰网)?房产\w{1,6}|_凤凰\w{0,4}|_凤凰网|_)$")
CHANNEL_PAGE = re.compile(r"\w{1,6}频道")
#: The date shapes the issue lists, read from the raw ``date:`` line (not through the normalizer).
DATE_SHAPES = re.compile(
    r"^(?P<y>\d{4})\s*[-./年]\s*(?P<m>\d{1,2})\s*[-./月]\s*(?P<d>\d{1,2})\s*日?\s*-?\s*"
    r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?$"
)
DATE_LINE = re.compile(r"^date:[ \t]*(.*?)[ \t]*$", re.MULTILINE)
EDITOR = re.compile(r"^\s*[\[【（(]?\s*责任编辑\s*[：:]\s*([^\]】）)\s]{1,20})")
SHARE_END = "使用“扫一扫”即可将网页分享至朋友圈"
FOOTER_WORDS = frozenset({"第一财经", "APP", "日报微博", "微信服务号", "微信订阅号", "一财资讯"})
#: Yicai column names printed where a reporter's byline would be: not a person.
COLUMNS = frozenset({"绝对值", "一财大政", "一财汽车", "一财资讯", "社论"})
LEAD_NAME = re.compile(r"[\u4e00-\u9fff]{2,4}")
TITLE_CHANNEL = re.compile(r"(?:频道|——(?:凤凰网)?房产\w{1,6}|_凤凰\w{0,4}|_凤凰网|_中国网|_中金在线|_\s*)$")
COLUMN_BYLINE = re.compile(r"^[（(]绝对值\s*([^\s）)－—-]{2,4})[）)]$")
_SPACE = re.compile(r"[\s\u3000\u00a0\u200b]+")


def _key(text: str) -> str:
    return _SPACE.sub("", text).rstrip("…").removesuffix("...")


def current_body(text: str) -> str:
    """The body of the file's last (current) front-matter block."""
    return split_blocks(text.replace("\r\n", "\n").replace("\r", "\n"))[-1].body


def expected_author(body: str, title: str = "") -> str | None:
    """The person the raw file names: an editor line, else a ``（绝对值 X）`` byline, else the reporters
    named before the text (yicai): the line after the share prompt, and name lines leading the body
    (column labels, images and share prompts skipped; not for channel-suffixed titles, whose sites start
    with text). Several reporters are joined with 、."""
    lines = body.split("\n")
    for line in lines:
        m = EDITOR.match(line)
        if m:
            return m.group(1)
    for line in lines:
        m = COLUMN_BYLINE.match(line.strip())
        if m:
            return m.group(1)
    if "<!-- more -->" in body:
        lines = body.split("<!-- more -->", 1)[1].split("\n")
    names: list[str] = []
    after_prompt = False
    for raw in lines:
        line = raw.strip(" \t\u3000\u00a0")
        if not line or line.startswith("<img") or line in COLUMNS or line.startswith("打开微信"):
            continue
        if SHARE_END in line:
            after_prompt = True
            continue
        if after_prompt and not names and len(line) <= 16 and not re.search(r"[。，,；;！!？?：:“”\d（(]", line):
            names.append(line.split()[0])
            continue
        if (names or not TITLE_CHANNEL.search(title)) and LEAD_NAME.fullmatch(line) and len(names) < 4:
            names.append(line)
            continue
        break
    return "、".join(dict.fromkeys(names)) or None


def title_line(text: str) -> str:
    """The current version's raw ``title:`` value."""
    found = re.findall(r"^title:[ \t]*(.*?)[ \t]*$", text.replace("\r", ""), re.MULTILINE)
    return found[-1] if found else ""


def related_snippets(body: str) -> list[str]:
    """Yicai layout: after the article, behind a run of ≥2 lines holding a single space, come snippets
    of related articles (the footer words excluded)."""
    lines = body.split("\n")
    runs = [i for i in range(1, len(lines)) if lines[i] in (" ", "\u00a0") and lines[i - 1] in (" ", "\u00a0")]
    if not runs:
        return []
    cut = runs[-1]
    if sum(1 for x in lines[:cut] if x.strip() and "<!--" not in x) < 1 or any(EDITOR.match(x) for x in lines[cut:]):
        return []
    rest = [x.strip() for x in lines[cut + 1 :] if x.strip() and x.strip() not in FOOTER_WORDS]
    if len(rest) > 12:  # a long tail is the article itself (a blank run near the top)
        return []
    before = {x.strip() for x in lines[:cut]}
    return [x for x in rest if len(x) >= 12 and x not in before]  # a snippet may repeat the article's lead


def truncated_first(paragraphs: list[str]) -> bool:
    """The first paragraph is a shorter copy of the start of a later one (a repeated teaser/lead)."""
    keys = [_key(p) for p in paragraphs]
    if len(keys) < 2 or len(keys[0]) < 8:
        return False
    return any(k.startswith(keys[0]) and len(k) > len(keys[0]) for k in keys[1:])


def expected_date(text: str) -> datetime | None:
    """The current version's front-matter date when it holds one of the known shapes."""
    values = DATE_LINE.findall(text.replace("\r", ""))
    if not values:
        return None
    m = DATE_SHAPES.match(re.sub(r"\s+", " ", values[-1]).strip())
    if not m:
        return None
    try:
        return datetime(
            int(m["y"]), int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"] or 0),
            tzinfo=ZoneInfo(TIMEZONE),
        )
    except ValueError:
        return None


# ---------------------------------------------------------------- the report


@dataclass(slots=True)
class Quality:
    files_read: int = 0
    articles_stored: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    boilerplate: int = 0
    boilerplate_by_marker: dict[str, int] = field(default_factory=dict)
    repeated_teaser: int = 0
    repeated_paragraph: int = 0
    name_line_left: int = 0
    channel_suffix: int = 0
    author_named: int = 0
    author_found: int = 0
    related_left: int = 0
    date_in_field: int = 0
    date_exact: int = 0
    date_source: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, name: str) -> None:
        got = self.examples.setdefault(kind, [])
        if len(got) < 5:
            got.append(name)


def _pct(n: int, total: int) -> str:
    return f"{n:5d} / {total:<5d} {100.0 * n / total if total else 0.0:6.2f} %"


def render(q: Quality) -> str:
    a = q.articles_stored
    out = [
        f"files read             {q.files_read}",
        f"articles stored        {q.articles_stored}",
        f"files rejected         {sum(q.rejected.values())}",
    ]
    out += [f"  {reason}: {n}" for reason, n in sorted(q.rejected.items(), key=lambda kv: -kv[1])]
    out += [
        f"residual boilerplate   {_pct(q.boilerplate, a)}",
        *(f"  {k}: {v}" for k, v in sorted(q.boilerplate_by_marker.items())),
        f"repeated teaser/lead   {_pct(q.repeated_teaser, a)}",
        f"repeated paragraph     {_pct(q.repeated_paragraph, a)}",
        f"title channel suffix   {_pct(q.channel_suffix, a)}",
        f"name line leads body   {_pct(q.name_line_left, a)}",
        f"author found (named)   {_pct(q.author_found, q.author_named)}",
        f"related snippets left  {_pct(q.related_left, a)}",
        f"date exact (in field)  {_pct(q.date_exact, q.date_in_field)}",
        "date_source",
        *(f"  {k:<13} {_pct(v, a)}" for k, v in sorted(q.date_source.items(), key=lambda kv: -kv[1])),
        f"seconds                {q.seconds:.1f}",
    ]
    for kind, names in sorted(q.examples.items()):
        out.append(f"e.g. {kind}: {' ;; '.join(names)}")
    return "\n".join(out)


def _settings(folder: Path, work: Path, config: Path | None) -> config_mod.Settings:
    rules: dict[str, Any] = {}
    if config is not None:
        shipped = config_mod.load(config)
        rules = {"normalize": shipped.normalize.model_dump(), "tags": shipped.tags.model_dump()}
    settings = config_mod.from_mapping(
        {
            **rules,
            "output": {"dir": str(work / "out")},
            "sources": [{"name": "corpus", "type": "archive", "path": str(folder.resolve()), "timezone": TIMEZONE}],
        },
        base=work,
    )
    # a temporary database, whatever $SYNDICATOR_DATABASE_URL says
    url = f"sqlite:///{work / 'quality.db'}"
    return settings.model_copy(update={"database": settings.database.model_copy(update={"url": url})})


def measure(folder: Path, config: Path | None = None) -> Quality:
    """Sync ``folder`` into a temporary database and measure the stored articles."""
    q = Quality()
    started = time.monotonic()
    files = {rel.replace("\\", "/"): Path(full) for rel, full in walk(folder)}
    q.files_read = len(files)
    with tempfile.TemporaryDirectory(prefix="corpus-quality-") as tmp:
        settings = _settings(folder, Path(tmp), config)
        repo = Repository(open_database(settings.database.url))
        report, _ = sync(settings, repo, render=False)
        for source in report.sources:
            for err in source.errors:
                reason = err.split(": ", 1)[-1]
                q.rejected[reason] = q.rejected.get(reason, 0) + 1
        rows = list(repo.iter_articles())
        repo.engine.dispose()
    q.articles_stored = len(rows)
    _check(q, rows, files)
    q.seconds = time.monotonic() - started
    return q


def _check(q: Quality, rows: Iterable[dict[str, Any]], files: dict[str, Path]) -> None:
    sources: Counter[str] = Counter()
    markers: Counter[str] = Counter()
    for row in rows:
        name = str(row["source_path"])
        sources[str(row["date_source"])] += 1
        text = files[name].read_bytes().decode("utf-8", "replace") if name in files else ""
        body_text = str(row["content_text"])
        html = str(row["content_html"])
        found = [k for k, pat in MARKERS.items() if pat.search(body_text) or pat.search(html)]
        if found:
            q.boilerplate += 1
            markers.update(found)
            q.note("boilerplate", name)
        paragraphs = [p for p in body_text.split("\n\n") if p.strip()]
        if truncated_first(paragraphs):
            q.repeated_teaser += 1
            q.note("repeated_teaser", name)
        if paragraphs and LEAD_NAME.fullmatch(paragraphs[0]) and not TITLE_CHANNEL.search(title_line(text)):
            q.name_line_left += 1
            q.note("name_line_left", name)
        if len({_key(p) for p in paragraphs}) != len(paragraphs):
            q.repeated_paragraph += 1
            q.note("repeated_paragraph", name)
        title = str(row["title"])
        if CHANNEL_SUFFIX.search(title) and not CHANNEL_PAGE.fullmatch(title):
            q.channel_suffix += 1
            q.note("channel_suffix", title)
        body = current_body(text)
        person = expected_author(body, title_line(text))
        if person is not None:
            q.author_named += 1
            if row["author"] == person:
                q.author_found += 1
            else:
                q.note("author_missed", f"{name} (want {person}, got {row['author']})")
        para_keys = {_key(p) for p in paragraphs}
        if any(_key(s) in para_keys for s in related_snippets(body)):
            q.related_left += 1
            q.note("related_left", name)
        want = expected_date(text)
        if want is not None:
            q.date_in_field += 1
            if datetime.fromisoformat(str(row["published"])) == want and row["date_source"] == "front_matter":
                q.date_exact += 1
            else:
                q.note("date_wrong", f"{name} (want {want.isoformat()}, got {row['published']})")
    q.date_source = dict(sources)
    q.boilerplate_by_marker = dict(markers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="archive folder, e.g. ../shared/corpus/posts")
    parser.add_argument("--config", type=Path, default=None,
                        help="take the normalize/tags rules from this config (default ./config.yaml when present)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if not args.path.is_dir():
        print(f"error: {args.path}: not a folder", file=sys.stderr)
        return 2
    config = args.config or (Path("config.yaml") if Path("config.yaml").is_file() else None)
    q = measure(args.path, config)
    print(json.dumps(asdict(q), ensure_ascii=False) if args.json else render(q))
    return 0


if __name__ == "__main__":
    sys.exit(main())

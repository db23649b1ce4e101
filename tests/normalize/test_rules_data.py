"""The shipped rules (syndicator/normalize/rules.yaml): each has a real line from the corpus, and does its job
on that line through the code that applies it."""

from __future__ import annotations

import re

import pytest

from syndicator.config import NormalizeSettings, TagSettings
from syndicator.normalize import normalize_item
from syndicator.normalize.rules import DEFAULTS, RULE_LISTS, Rule, compile_rules
from syndicator.normalize.text import clean_inline
from syndicator.normalize.title import strip_title

from .conftest import CORPUS, raw_file

ALL = [(kind, rule) for kind in RULE_LISTS for rule in DEFAULTS[kind]]
IDS = [f"{kind}:{rule.example[:20]}" for kind, rule in ALL]
LEAD = "针对春节后企业复产复工和返程客流进入高峰期的情况，全市应急系统以有效防范和坚决遏制重特大事故为重点。"


def post(body: str, title: str = "标题", author: str = "wetech", date: str = "2019-02-25- 06:24") -> str:
    return f"---\ntitle: {title}\nauthor: {author}\ndate: {date}\n---\n{body}"


@pytest.fixture(scope="module")
def corpus_lines() -> set[str]:
    posts = CORPUS / "posts"
    if not posts.is_dir():
        pytest.skip("real corpus not found at ../shared/corpus/posts beside the repo (not shipped with the project)")
    lines: set[str] = set()
    for path in posts.iterdir():
        for line in path.read_bytes().decode("utf-8", "replace").replace("\r", "\n").split("\n"):
            line = clean_inline(line)
            lines.add(line)
            key, _, value = line.partition(":")
            if key in ("title", "date", "author"):
                lines.add(clean_inline(value))
    return lines


def test_every_list_has_rules() -> None:
    assert all(DEFAULTS[kind] for kind in RULE_LISTS)


@pytest.mark.parametrize(("kind", "rule"), ALL, ids=IDS)
def test_example_is_a_real_corpus_line(kind: str, rule: Rule, corpus_lines: set[str]) -> None:
    assert rule.example in corpus_lines


@pytest.mark.parametrize(("kind", "rule"), ALL, ids=IDS)
def test_rule_does_its_job_on_its_example(kind: str, rule: Rule, rules: NormalizeSettings, tags: TagSettings) -> None:
    pattern = re.compile(rule.pattern)
    example = rule.example
    if kind == "title_suffixes":
        # the rule matches the title or what is left of it once the outer suffixes are gone
        title, _channel, _unknown = strip_title(example, compile_rules(rules))
        assert title != example and example.startswith(title)
        rest, seen = example, False
        while rest != title:
            m = pattern.search(rest)
            seen = seen or (m is not None and m.start() > 0)
            rest = strip_title_once(rest, rules)
        assert seen, (rule.pattern, example)
        return
    assert pattern.search(example), (rule.pattern, example)
    if kind in ("boilerplate_lines", "footer_lines", "end_lines", "byline_after"):
        a = normalize_item(raw_file(post(f"{LEAD}\n{example}\n")), rules, tags)
        assert a.content_text == LEAD
    elif kind in ("editor_lines", "byline_lines"):
        a = normalize_item(raw_file(post(f"{LEAD}\n{example}\n")), rules, tags)
        assert a.content_text == LEAD
        name = pattern.match(example).groupdict().get("name")  # type: ignore[union-attr]
        assert a.author == name
    elif kind == "lead_bylines":
        a = normalize_item(raw_file(post(f"{example}\n{LEAD}\n")), rules, tags)
        assert (a.author, a.content_text) == (example, LEAD)
        ifeng = normalize_item(raw_file(post(f"{example}\n{LEAD}\n", title="标题_重庆频道")), rules, tags)
        assert ifeng.author is None and ifeng.content_text.startswith(example)
    elif kind == "junk_dates":
        a = normalize_item(raw_file(post(LEAD, date=example)), rules, tags)
        assert a.date_source == "file_mtime"
    elif kind == "publishers":
        a = normalize_item(raw_file(post(LEAD, author=example)), rules, tags)
        assert (a.publisher, a.author) == (example, None)
    elif kind == "submitters":
        a = normalize_item(raw_file(post(LEAD, author=example)), rules, tags)
        assert (a.submitter, a.author) == (example, None)


def strip_title_once(title: str, rules: NormalizeSettings) -> str:
    """One suffix off (the first rule that applies), as ``strip_title`` does in its loop."""
    for p in compile_rules(rules).title_suffixes:
        m = p.search(title)
        if m and m.start() > 0 and title[: m.start()].rstrip(" _-—|｜"):
            return title[: m.start()].rstrip(" _-—|｜")
    return title

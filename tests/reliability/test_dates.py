"""Date policy: naive dates are in the source's timezone; a date far ahead never pins a story to the top of
a feed; dates before 1970 are kept; dates no calendar can hold are no date at all (never a crash)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import feedparser
from click.testing import CliRunner
from conftest import write_config

from syndicator.cli import main
from syndicator.config import Settings
from syndicator.normalize import normalize_item
from syndicator.types import RawItem

from .test_hostile import TEXT, articles, assert_clean_outputs, post

MTIME = datetime(2019, 3, 1, 12, 0, tzinfo=UTC)


def test_date_policy_end_to_end(tmp_path: Path) -> None:
    arch = tmp_path / "archive"
    arch.mkdir()
    cases = {
        "naive.md": ("2019-02-25- 06:24", ""),  # China time, as the seed's dates
        "aware.md": ("2019-02-25T06:24:00+02:00", ""),
        "future.md": ("2090-01-01 00:00", ""),
        "future-updated.md": ("2019-02-20 10:00", "updated: 2095-01-01 00:00:00\n"),
        "pre-1970.md": ("1900-01-01 00:00", ""),
        "year-one.md": ("0001-01-01", ""),  # YAML reads a date; no timezone can shift it
        "year-9999.md": ("9999-12-31 23:59:59", ""),
    }
    for n, (name, (date, extra)) in enumerate(cases.items()):
        path = arch / name
        path.write_text(post(f"日期{name}", f"{TEXT}{n}", date=date, extra=extra), encoding="utf-8")
        os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
    config = write_config(tmp_path, arch)
    result = CliRunner().invoke(main, ["--config", str(config), "sync", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "future.md: date 2089-12-31 16:00 UTC is in the future: using 2019-03-01 12:00" in result.stderr
    assert "future-updated.md: updated date 2094-12-31 16:00 UTC is in the future: ignored" in result.stderr
    rows = {str(r["source_path"]): r for r in articles(config)}

    def at(name: str, field: str = "published") -> datetime:
        return datetime.fromisoformat(str(rows[name][field])).astimezone(UTC)

    assert at("naive.md") == datetime(2019, 2, 24, 22, 24, tzinfo=UTC)
    assert at("aware.md") == datetime(2019, 2, 25, 4, 24, tzinfo=UTC)
    assert (at("future.md"), rows["future.md"]["date_source"]) == (MTIME, "file_mtime")
    assert at("future-updated.md", "updated") == at("future-updated.md")
    assert at("pre-1970.md").isoformat().startswith("1899-12-31T15:54")  # Shanghai's 1900 offset: LMT
    for name in ("year-one.md", "year-9999.md"):  # not a usable date: the file's time stands in
        assert rows[name]["date_source"] == "file_mtime", name
    out = tmp_path / "feeds"
    assert_clean_outputs(out)
    atom = feedparser.parse((out / "all.atom").read_bytes())
    assert "2090" not in atom.feed.updated and "2095" not in atom.feed.updated
    assert atom.entries[0].title == "日期future.md"  # the newest trustworthy date: its file's time
    assert atom.entries[-1].title == "日期pre-1970.md"  # before 1970: kept, sorted last
    rss = feedparser.parse((out / "all.rss").read_bytes())
    assert rss.bozo == 0 and rss.entries[-1].published.startswith("Sun, 31 Dec 1899")


def test_dates_no_calendar_can_hold_are_no_date_not_an_error() -> None:
    settings = Settings()
    for value in ("0001-01-01", "0001-01-01 00:00:00", "9999-12-31 23:59:59", "1000000-01-01"):
        text = f"---\ntitle: 标题\ndate: {value}\n---\n{TEXT}\n"
        raw = RawItem(source="s", key="k.md", timezone="Pacific/Kiritimati", data=text.encode(), path="k.md")
        a = normalize_item(raw, settings.normalize, settings.tags)
        assert a.title == "标题" and a.published.tzinfo is not None, value

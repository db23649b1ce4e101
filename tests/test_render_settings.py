"""Outputs follow the settings they are rendered with: a sync after `site:`, `output.max_entries` or `digest:`
changed in config.yaml re-renders everything once (no file of the archive changed), then is a no-op again."""

from __future__ import annotations

from pathlib import Path

from conftest import write_config
from test_publish import archive_of, contents, run

from bench.generate import Generator


def test_a_changed_site_setting_re_renders_every_output_once(tmp_path: Path) -> None:
    archive = archive_of(tmp_path, Generator(9, tags=6).posts(20))
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    feeds = tmp_path / "feeds"
    config = write_config(tmp_path, archive, db_url=db, site={"title": "早报", "base_url": "https://a.example/"})
    run(config, "sync")
    assert "https://a.example/" in (feeds / "all.atom").read_text(encoding="utf-8")

    config = write_config(tmp_path, archive, db_url=db, site={"title": "晚报", "base_url": "https://b.example/news/"})
    out = run(config, "sync")
    assert "new=0" in out and "feeds_written=0" not in out
    after = contents(feeds)
    assert not any(b"https://a.example/" in data for data in after.values())  # not one file left behind
    assert "晚报" in (feeds / "index.html").read_text(encoding="utf-8")
    feeds.rename(tmp_path / "feeds-after-change")
    run(config, "render")
    assert contents(feeds) == after  # what a full render with the new settings writes

    mtimes = {p: (feeds / p).stat().st_mtime_ns for p in after}
    assert "feeds_written=0" in run(config, "sync")  # and then nothing again
    assert {p: (feeds / p).stat().st_mtime_ns for p in after} == mtimes

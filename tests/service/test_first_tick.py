"""The service's first tick renders everything only when it must: after a crash, or when the outputs were
published with other settings (or never); otherwise only what its first poll changed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import write_config

from syndicator import recovery
from syndicator import scheduler as scheduler_mod
from syndicator.config import load
from syndicator.scheduler import Ticker
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

from .helpers import write_post


def _outputs(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[bool]]:
    """A synced archive with its outputs; the list records each publish of a tick: True = everything."""
    posts = tmp_path / "posts"
    posts.mkdir()
    for n in range(1, 4):
        write_post(posts, n)
    cfg = write_config(tmp_path, posts, schedule={"tick": "1s", "jitter": 0})
    settings = load(cfg)
    sync(settings, Repository(open_database(settings.database.url)))
    calls: list[bool] = []
    real = scheduler_mod.publish

    def spy(settings: Any, repo: Any, changes: Any = None) -> int:
        calls.append(changes is None)
        return real(settings, repo, changes=changes)

    monkeypatch.setattr(scheduler_mod, "publish", spy)
    return cfg, calls


def _first_tick(cfg: Path) -> Ticker:
    settings = load(cfg)
    ticker = Ticker(settings, Repository(open_database(settings.database.url)), threading.Event())
    ticker.prepare()
    ticker.tick()
    assert ticker.rendered_once
    return ticker


def test_a_service_started_on_current_outputs_renders_nothing(published: tuple[Path, list[bool]]) -> None:
    cfg, calls = published
    out = load(cfg).output.dir
    before = _outputs(out)
    _first_tick(cfg)
    assert calls == [False]  # no full render: only what the first poll changed (nothing)
    after = _outputs(out)
    assert after == before


def test_a_service_started_after_a_settings_change_renders_everything(published: tuple[Path, list[bool]]) -> None:
    cfg, _ = published
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["site"]["title"] = "改过的站名"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    out = load(cfg).output.dir
    _first_tick(cfg)
    tag_feeds = [p for p in (out / "tags").glob("*.atom")]
    assert tag_feeds and all("改过的站名" in p.read_text(encoding="utf-8") for p in tag_feeds)
    assert "改过的站名" in (out / "all.atom").read_text(encoding="utf-8")


def test_a_service_started_after_a_crash_renders_everything(published: tuple[Path, list[bool]]) -> None:
    cfg, calls = published
    out = load(cfg).output.dir
    dead = recovery.begin(out)  # a writer that died before its render: its marker stays, unlocked
    dead.__del__()
    dead._fd = None
    (out / "all.atom").unlink()  # what the dead writer did not get to write
    _first_tick(cfg)
    assert calls == [True]
    assert (out / "all.atom").exists()
    assert not list(out.glob(recovery.MARKER_PREFIX + "*"))


def test_a_service_started_on_an_empty_output_folder_renders_everything(published: tuple[Path, list[bool]]) -> None:
    cfg, _ = published
    out = load(cfg).output.dir
    for path in sorted(out.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    _first_tick(cfg)
    assert (out / "all.atom").exists() and (out / "index.html").exists() and list((out / "tags").glob("*.atom"))

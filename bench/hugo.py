"""The same archive built with Hugo (when ``hugo`` is on PATH): the static site generator a newsroom would use.

Hugo is configured to do the job syndicator does and nothing more: taxonomy ``tags``, one RSS feed for the
home page and one per tag term, ``services.rss.limit`` equal to our ``max_entries``, pages listed but never
rendered (``_build.render = never``; disabling the ``page`` kind would empty the feeds), no section or
taxonomy-list pages, no sitemap. Copying the archive into Hugo's ``content/`` is a step of its own (timed
once, reported separately); each build starts from an empty ``public/`` (the old one moved aside).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .cases import MAX_ENTRIES, BenchError, Workspace
from .measure import Run, Summary, run, summarize

CONFIG = f"""\
baseURL = "http://127.0.0.1:8080/"
languageCode = "zh-cn"
title = "bench"
ignoreErrors = ["error-disable-taxonomy"]
disableKinds = ["section", "taxonomy", "sitemap", "robotsTXT", "404"]
[taxonomies]
  tag = "tags"
[outputs]
  home = ["RSS"]
  term = ["RSS"]
[services.rss]
  limit = {MAX_ENTRIES}
[[cascade]]
  [cascade._build]
    render = "never"
    list = "always"
  [cascade._target]
    kind = "page"
"""


def hugo_path() -> str | None:
    return shutil.which("hugo")


def version() -> str:
    hugo = hugo_path()
    if hugo is None:
        return ""
    return subprocess.run([hugo, "version"], capture_output=True, text=True, check=False).stdout.strip()


def site_dir(ws: Workspace) -> Path:
    return ws.root / f"hugo-{ws.name}"


def copy_content(ws: Workspace) -> Summary:
    """Copy the archive into the Hugo site's content folder (the step a Hugo user needs first)."""
    site = site_dir(ws)
    site.mkdir(parents=True, exist_ok=True)
    (site / "hugo.toml").write_text(CONFIG, encoding="utf-8")
    content = site / "content"
    ws.move_aside(content)
    content.mkdir()
    r = run(["cp", "-r", str(ws.archive), str(content / "posts")])
    if r.returncode != 0:
        raise BenchError(f"copying the archive for hugo failed: {r.output.strip()[-400:]}")
    return summarize("copy", ws.name, ws.n, "hugo", [r])


def ready(ws: Workspace) -> Summary:
    """The archive copied into the Hugo site (``copy_content``'s timing) and one untimed warm-up build: it fills
    Hugo's caches and tells whether Hugo can build this archive at all (``BenchError`` if not)."""
    copied = copy_content(ws)
    build(ws, 1)
    return copied


def build(ws: Workspace, runs: int) -> Summary:
    """``hugo`` into an empty ``public/``; a failed build (broken front matter aborts Hugo) is reported."""
    hugo = hugo_path()
    assert hugo is not None
    site = site_dir(ws)
    results: list[Run] = []
    for _ in range(runs):
        ws.move_aside(site / "public")
        r = run([hugo, "--quiet", "--source", str(site), "--destination", str(site / "public"),
                 "--cacheDir", str(site / "cache")], cwd=site)
        if r.returncode != 0:
            raise BenchError(f"hugo failed: {r.output.strip().splitlines()[-1][-300:] if r.output.strip() else r.returncode}")
        if not (site / "public" / "index.xml").exists():
            raise BenchError("hugo wrote no index.xml")
        results.append(r)
    return summarize("cold", ws.name, ws.n, "hugo", results)


def feeds_written(ws: Workspace) -> int:
    """How many RSS files Hugo's last build wrote (home + one per tag term)."""
    return sum(1 for _ in (site_dir(ws) / "public").rglob("index.xml"))

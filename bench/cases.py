"""The benchmark cases. Each runs the real ``syndicator`` CLI (or ``hugo``) in a subprocess on a generated archive.

A working folder per N holds the config, the SQLite database and the output. Old outputs are moved aside
(renamed into ``trash/``), never deleted inside a timed step; the trash is emptied at the end, untimed.
Every case checks its result (exit code, the new/edited/deleted story in ``all.atom``), so a fast wrong
answer fails instead of looking good.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from .generate import DEFAULT_SEED, extra_post, generate
from .measure import Run, Summary, run, summarize

MAX_ENTRIES = 50
REPO = Path(__file__).resolve().parents[1]


class BenchError(Exception):
    """A benchmarked command failed or produced the wrong output."""


@dataclass(slots=True)
class Workspace:
    """The folders of one archive size: archive, config, database, output, trash."""

    root: Path
    name: str  # "10000" for a generated archive, "corpus" for the real one
    n: int
    archive: Path
    seed: int = DEFAULT_SEED
    prefill: str = "sync"  # how a case that needs a filled database gets one: "sync" or "bulk" (bench/prefill.py)

    @property
    def run_dir(self) -> Path:
        return self.root / f"run-{self.name}"

    @property
    def config(self) -> Path:
        return self.run_dir / "config.yaml"

    @property
    def out(self) -> Path:
        return self.run_dir / "feeds"

    @property
    def trash(self) -> Path:
        return self.root / "trash"

    def prepare(self) -> None:
        """The shipped config (its tag rules included), pointed at this archive, database and output."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
        cfg["database"] = {"url": f"sqlite:///{self.run_dir / 'syndicator.db'}"}
        cfg["output"] = {"dir": str(self.out), "max_entries": MAX_ENTRIES}
        cfg["sources"] = [{"name": "bench", "type": "archive", "path": str(self.archive), "timezone": "Asia/Shanghai"}]
        self.config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")

    def move_aside(self, path: Path) -> None:
        """Rename ``path`` into the trash (fast on any size), so the next step starts empty."""
        if path.exists():
            self.trash.mkdir(parents=True, exist_ok=True)
            os.replace(path, self.trash / f"{path.name}-{uuid.uuid4().hex[:8]}")

    def reset_database(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            p = self.run_dir / f"syndicator.db{suffix}"
            if p.exists():
                p.unlink()

    def empty_trash(self) -> None:
        shutil.rmtree(self.trash, ignore_errors=True)


def make_workspace(root: Path, n: int, seed: int = DEFAULT_SEED) -> Workspace:
    """Generate (or reuse) the archive of ``n`` posts and a workspace for it."""
    posts = generate(root / f"archive-{n}-s{seed}", n, seed)
    ws = Workspace(root=root, name=str(n), n=n, archive=posts, seed=seed)
    ws.prepare()
    return ws


def corpus_workspace(root: Path, corpus: Path) -> Workspace:
    """A workspace over a private copy of the real corpus (the incremental cases edit files in place)."""
    copy = root / "archive-corpus" / "posts"
    if not copy.is_dir() or len(os.listdir(copy)) != len(os.listdir(corpus)):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(corpus, copy)
    n = sum(1 for p in copy.iterdir() if p.suffix == ".md")
    ws = Workspace(root=root, name="corpus", n=n, archive=copy)
    ws.prepare()
    return ws


def syndicator(ws: Workspace, *args: str) -> Run:
    cmd = [sys.executable, "-m", "syndicator", "--config", str(ws.config), "-q", *args]
    r = run(cmd, cwd=ws.run_dir)
    if r.returncode not in (0, 1):  # 1: some file was skipped (the real corpus has a few), still a result
        raise BenchError(f"{' '.join(args)} exited {r.returncode}: {r.output.strip()[-800:]}")
    return r


def sync(ws: Workspace) -> Run:
    return syndicator(ws, "sync", "--no-progress")


def _all_feed(ws: Workspace) -> str:
    try:
        return (ws.out / "all.atom").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchError(f"{ws.out / 'all.atom'} was not written") from None


def _title(data: bytes) -> str:
    """The headline of a post without its channel suffix (what the feed shows), "" when there is none."""
    text = data.decode("utf-8", "replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("title: ")), "title: ")
    return line.removeprefix("title: ").split("_")[0].strip()


# -- the cases ---------------------------------------------------------------------------------------------
def cold(ws: Workspace, runs: int) -> Summary:
    """Empty database and output folder → every feed and page written."""
    results = []
    for _ in range(runs):
        ws.move_aside(ws.out)
        ws.reset_database()
        results.append(sync(ws))
        _all_feed(ws)
    return summarize("cold", ws.name, ws.n, "syndicator", results)


def ensure_synced(ws: Workspace) -> None:
    """Bring database and output up to date (untimed) before a case that needs them."""
    if not (ws.run_dir / "syndicator.db").exists() or not (ws.out / "all.atom").exists():
        ws.reset_database()
        if ws.prefill == "bulk":
            print(f"  {ws.name}: filling the database with bulk_load …", file=sys.stderr, flush=True)
            # in a process of its own: a child forked from a grown benchmark process would report the
            # parent's size as its own peak (ru_maxrss survives the fork and exec)
            subprocess.run([sys.executable, "-m", "bench.prefill", str(ws.config)], cwd=REPO, check=True)
        sync(ws)


def noop(ws: Workspace, runs: int) -> Summary:
    """Nothing changed since the last sync."""
    ensure_synced(ws)
    results = []
    for _ in range(runs):
        before = (ws.out / "all.atom").stat().st_mtime_ns
        results.append(sync(ws))
        if (ws.out / "all.atom").stat().st_mtime_ns != before:
            raise BenchError("a no-op sync rewrote all.atom")
    return summarize("noop", ws.name, ws.n, "syndicator", results, posts=ws.n)


def _newest(data: bytes) -> bytes:
    """``data`` with its date line set to now (China time): newer than every archive post, so in all.atom."""
    now = datetime.now(UTC) + timedelta(hours=8)
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"date: "):
            lines[i] = b"date: " + now.strftime("%Y-%m-%d %H:%M:%S").encode()
            break
    return b"\n".join(lines)


def _shown(ws: Workspace, title: str) -> bool:
    return f"<title>{title}</title>" in _all_feed(ws)


def incremental(ws: Workspace, runs: int) -> list[Summary]:
    """One new file, then that file edited (its title), then deleted; each a sync that re-renders what changed.

    The new post is dated now, so it leads all.atom and each step is visible there; the archive is left
    as it was.
    """
    ensure_synced(ws)
    new_runs, edit_runs, delete_runs = [], [], []
    for k in range(runs):
        data = _newest(extra_post(ws.n, k, ws.seed).data)
        title = _title(data)
        path = ws.archive / f"zz-bench-new-{k}.md"
        try:
            path.write_bytes(data)
            new_runs.append(sync(ws))
            if not _shown(ws, title):
                raise BenchError("the new post is not in all.atom")
            marker = f"改{k}"
            path.write_bytes(data.replace(b"title: ", f"title: {marker}".encode(), 1))
            edit_runs.append(sync(ws))
            if not _shown(ws, marker + title):
                raise BenchError("the edited title is not in all.atom")
        finally:
            path.unlink(missing_ok=True)
        delete_runs.append(sync(ws))
        if marker + title in _all_feed(ws):
            raise BenchError("the deleted post is still in all.atom")
    return [
        summarize("new", ws.name, ws.n, "syndicator", new_runs, posts=1),
        summarize("edit", ws.name, ws.n, "syndicator", edit_runs, posts=1),
        summarize("delete", ws.name, ws.n, "syndicator", delete_runs, posts=1),
    ]


def render(ws: Workspace, runs: int) -> Summary:
    """``syndicator render`` into an empty output folder, from the database."""
    ensure_synced(ws)
    results = []
    for _ in range(runs):
        ws.move_aside(ws.out)
        results.append(syndicator(ws, "render"))
        _all_feed(ws)
    return summarize("render", ws.name, ws.n, "syndicator", results)


CASES: dict[str, Callable[[Workspace, int], Summary | list[Summary]]] = {
    "cold": cold, "noop": noop, "incremental": incremental, "render": render,
}

"""The benchmark cases. Each runs the real ``syndicator`` CLI (or ``hugo``) in a subprocess on a generated archive.

A working folder per N holds the config, the SQLite database and the output. Old outputs are moved aside
(renamed into ``trash/``), never deleted inside a timed step; the trash is emptied at the end, untimed.
Every case checks its result (exit code, the new/edited/deleted story in ``all.atom``), so a fast wrong
answer fails instead of looking good.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .generate import DEFAULT_SEED, extra_post, generate
from .measure import Run, Summary, run, summarize

MAX_ENTRIES = 50


class BenchError(Exception):
    """A benchmarked command failed or produced the wrong output."""


@dataclass(slots=True)
class Workspace:
    """The folders of one archive size: archive, config, database, output, trash."""

    root: Path
    n: int
    archive: Path
    seed: int = DEFAULT_SEED

    @property
    def run_dir(self) -> Path:
        return self.root / f"run-{self.n}"

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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            textwrap.dedent(
                f"""\
                site: {{title: bench, base_url: "http://127.0.0.1:8080/"}}
                database: {{url: "sqlite:///{self.run_dir / 'syndicator.db'}"}}
                output: {{dir: "{self.out}", max_entries: {MAX_ENTRIES}}}
                sources:
                  - {{name: bench, type: archive, path: "{self.archive}", timezone: Asia/Shanghai}}
                """
            ),
            encoding="utf-8",
        )

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


def make_workspace(root: Path, n: int, seed: int = DEFAULT_SEED, archive: Path | None = None) -> Workspace:
    """Generate (or reuse) the archive of ``n`` posts and a workspace for it."""
    posts = archive if archive is not None else generate(root / f"archive-{n}-s{seed}", n, seed)
    ws = Workspace(root=root, n=n, archive=posts, seed=seed)
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
    line = next(ln for ln in data.decode("utf-8").splitlines() if ln.startswith("title: "))
    return line.removeprefix("title: ").split("_")[0]


# -- the cases ---------------------------------------------------------------------------------------------
def cold(ws: Workspace, runs: int) -> Summary:
    """Empty database and output folder → every feed and page written."""
    results = []
    for _ in range(runs):
        ws.move_aside(ws.out)
        ws.reset_database()
        results.append(sync(ws))
        _all_feed(ws)
    return summarize("cold", ws.n, "syndicator", results)


def ensure_synced(ws: Workspace) -> None:
    """Bring database and output up to date (untimed) before a case that needs them."""
    if not (ws.run_dir / "syndicator.db").exists() or not (ws.out / "all.atom").exists():
        ws.reset_database()
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
    return summarize("noop", ws.n, "syndicator", results, posts=ws.n)


def incremental(ws: Workspace, runs: int) -> list[Summary]:
    """One new file, one edited file, one deleted file; each a sync that re-renders what changed.

    The archive is left as it was: the deleted file is the one added, the edited file gets its bytes back.
    """
    ensure_synced(ws)
    files = sorted(p for p in ws.archive.iterdir() if p.suffix == ".md")
    new_runs, edit_runs, delete_runs = [], [], []
    for k in range(runs):
        post = extra_post(ws.n, k, ws.seed)
        path = ws.archive / f"zz-bench-new-{k}.md"
        path.write_bytes(post.data)
        new_runs.append(sync(ws))
        if _title(post.data) not in _all_feed(ws):
            raise BenchError("the new post is not in all.atom")

        target = files[-1 - k]
        original = target.read_bytes()
        marker = f"改{k}"
        edited = original.replace(b"title: ", f"title: {marker}".encode(), 1)
        try:
            target.write_bytes(edited)
            edit_runs.append(sync(ws))
            if marker + _title(original) not in _all_feed(ws):
                raise BenchError("the edited title is not in all.atom")
        finally:
            target.write_bytes(original)
        path.unlink()
        delete_runs.append(sync(ws))
        if _title(post.data) in _all_feed(ws):
            raise BenchError("the deleted post is still in all.atom")
        sync(ws)  # the edited file's original bytes back (untimed)
    return [
        summarize("new", ws.n, "syndicator", new_runs, posts=1),
        summarize("edit", ws.n, "syndicator", edit_runs, posts=1),
        summarize("delete", ws.n, "syndicator", delete_runs, posts=1),
    ]


def render(ws: Workspace, runs: int) -> Summary:
    """``syndicator render`` into an empty output folder, from the database."""
    ensure_synced(ws)
    results = []
    for _ in range(runs):
        ws.move_aside(ws.out)
        results.append(syndicator(ws, "render"))
        _all_feed(ws)
    return summarize("render", ws.n, "syndicator", results)


CASES: dict[str, Callable[[Workspace, int], Summary | list[Summary]]] = {
    "cold": cold, "noop": noop, "incremental": incremental, "render": render,
}

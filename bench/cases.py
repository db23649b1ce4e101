"""The benchmark cases. Each runs the real ``syndicator`` CLI (or ``hugo``) in a subprocess on a generated archive.

A working folder per N holds the config, the SQLite database and the output. Old outputs are moved aside
(renamed into ``trash/``), never deleted inside a timed step; the trash is emptied at the end, untimed.
Every case checks its result (exit code, the new/edited/deleted story in ``all.atom``), so a fast wrong
answer fails instead of looking good.
"""

from __future__ import annotations

import compileall
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


def compile_package() -> None:
    """Write the package's bytecode, as an installed copy has it (pip compiles at install, Python at first
    import), before anything is timed: with ``PYTHONDONTWRITEBYTECODE`` set, as some shells and CI images do,
    every timed command compiled the whole package from source again (~40 ms of each start-up)."""
    compileall.compile_dir(REPO / "syndicator", quiet=1)


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


def _all_feed(ws: Workspace, after: Run | None = None) -> str:
    try:
        return (ws.out / "all.atom").read_text(encoding="utf-8")
    except FileNotFoundError:
        said = f"; the run exited {after.returncode}: {after.output.strip()[-800:]}" if after is not None else ""
        raise BenchError(f"{ws.out / 'all.atom'} was not written{said}") from None


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
        _all_feed(ws, results[-1])
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
        _all_feed(ws, results[-1])
    return summarize("render", ws.name, ws.n, "syndicator", results)


# -- the service watching the archive (`syndicator run`) --------------------------------------------------
WATCH_EXTRA = 500  # the watch case's posts: extra posts numbered apart from the incremental case's
SETTLE_SECONDS = 1.0  # untimed pause before each watched change
POLL_SECONDS = 0.005  # how often all.atom is read while waiting for a change to show
WATCH_TIMEOUT = 120.0  # seconds a change may take to show before the run fails


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _watch_config(ws: Workspace) -> Path:
    """The workspace's config for a service: its source polled once a day without jitter (the first tick polls
    it when it is due, and then nothing but the watcher explains a change within the run)."""
    cfg = yaml.safe_load(ws.config.read_text(encoding="utf-8"))
    cfg["sources"] = [{**s, "every": "1d"} for s in cfg["sources"]]
    cfg["schedule"] = {**(cfg.get("schedule") or {}), "jitter": 0}
    path = ws.run_dir / "watch.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


class _Service:
    """`syndicator run` on the workspace, its log in a file; ready once its first tick is done."""

    def __init__(self, ws: Workspace) -> None:
        self.port = _free_port()
        self.log = ws.run_dir / "watch.log"
        self._fh = self.log.open("wb")
        self._log_size, self._renders = -1, 0
        cmd = [sys.executable, "-m", "syndicator", "--config", str(_watch_config(ws)), "run", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=ws.run_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._fh)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait(self, check: Callable[[], bool], what: str, timeout: float = WATCH_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None:
                raise BenchError(f"the service exited with {self.proc.returncode}: {self.text()[-800:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"the service did not get to {what} within {timeout:.0f}s: {self.text()[-800:]}")
            time.sleep(POLL_SECONDS)

    def ready(self) -> None:
        """/healthz answers and the first tick (its poll, when due, and its render) is done."""
        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True  # 503 is an answer too
            except OSError:
                return False

        self.wait(lambda: "first tick done" in self.text(), "its first tick", timeout=1800)
        self.wait(up, "answer /healthz")

    def renders(self) -> int:
        """How many renders that wrote something the log shows so far (read again only when it grew)."""
        size = self.log.stat().st_size
        if size != self._log_size:
            self._log_size, self._renders = size, self.text().count(" output files (")
        return self._renders

    def peak_mb(self) -> float:
        """The service's peak resident memory so far (the kernel's high-water mark: no sampling needed)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return 0.0

    def stop(self) -> None:
        """SIGTERM, as systemd stops it; a clean stop exits 0."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    code = self.proc.wait(60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
                    raise BenchError("the service did not stop within 60s of SIGTERM") from None
                if code != 0:
                    raise BenchError(f"the service exited {code} on SIGTERM: {self.text()[-800:]}")
        finally:
            self._fh.close()


Timed = Callable[[str, Callable[[], object], Callable[[str], bool]], None]  # (step, change, shown in all.atom)


def _watch_run(ws: Workspace, k: int, timed: Timed) -> None:
    """One post written (dated now, so it leads all.atom), its title edited, then deleted."""
    data = _newest(extra_post(ws.n, WATCH_EXTRA + k, ws.seed).data)
    title = _title(data)
    edited = f"改{k}{title}"
    path = ws.archive / f"zz-bench-watch-{k}.md"
    try:
        timed("new", lambda: path.write_bytes(data), lambda atom: f"<title>{title}</title>" in atom)
        timed("edit", lambda: path.write_bytes(data.replace(b"title: ", f"title: 改{k}".encode(), 1)),
              lambda atom: f"<title>{edited}</title>" in atom)
        timed("delete", path.unlink, lambda atom: edited not in atom)
    finally:
        path.unlink(missing_ok=True)


def watch(ws: Workspace, runs: int) -> list[Summary]:
    """`syndicator run` on the synced workspace: time from writing a post (new, then its title edited, then
    deleted) until the render of the change is done — every feed, tag page, digest and the front page written
    (the service logs it), and ``all.atom`` shows the change — with the regular poll a day away (only the
    watcher explains it). The archive is left as it was."""
    ensure_synced(ws)
    svc = _Service(ws)
    steps: dict[str, list[float]] = {"new": [], "edit": [], "delete": []}

    def timed(step: str, change: Callable[[], object], shown: Callable[[str], bool]) -> None:
        renders = svc.renders()
        time.sleep(SETTLE_SECONDS)  # each change on a quiet service, as an editor's are: not queued behind the last
        started = time.perf_counter()
        change()
        # all.atom is the first file a render writes: the change is "in the feeds" once the render is done (the
        # log is read only when it grew, all.atom only then: reading 300 KB every 5 ms would slow the service)
        svc.wait(lambda: svc.renders() > renders and shown(_all_feed(ws)), f"show the {step}")
        steps[step].append(time.perf_counter() - started)

    try:
        svc.ready()
        for k in range(runs):
            _watch_run(ws, k, timed)
        peak = svc.peak_mb()
    finally:
        svc.stop()
    return [summarize(f"watch-{step}", ws.name, ws.n, "syndicator", [Run(t, peak, 0) for t in times], posts=1)
            for step, times in steps.items()]


CASES: dict[str, Callable[[Workspace, int], Summary | list[Summary]]] = {
    "cold": cold, "noop": noop, "incremental": incremental, "render": render, "watch": watch,
}

"""Run one command and measure it: wall seconds, CPU seconds and the peak memory of its whole process tree.

CPU seconds are the kernel's for the child and every descendant it reaped (``wait4``: the sync's workers and
its render's forked copy are all reaped before it exits); divided by the wall seconds they say how many cores
the command kept busy, the figure that moved least from run to run on a noisy machine.

Peak memory is the larger of two readings: the kernel's ``ru_maxrss`` for the child and the descendants it
reaped (``wait4``: the largest single process), and the sum over every live process in the tree of its
proportional set size (PSS: a page shared by k processes counts 1/k to each), sampled every 100 ms from
/proc (worker pools run at the same time, so their memory adds up, but a shared page is counted once).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

# Reading a process's PSS walks its page tables: ~6 ms of this process's CPU for a sync's tree, taken from the
# command it measures on a 2-core machine. Every 20 ms it made a cold sync of the real corpus 4.48 s instead
# of 3.48 s (10,000 posts: 14.1 s instead of 12.5 s) with the same peak (197 and 198 MB; 268 and 269 MB):
# memory grows batch by batch, and 100 ms still sees its peak (docs/PERFORMANCE.md, tenth round).
SAMPLE_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    output: str = ""
    cpu_seconds: float | None = None  # the process tree's user + system time (None: not measured)


@dataclass(frozen=True, slots=True)
class Summary:
    """The median of several runs of one case (and every run, for the JSON)."""

    case: str
    archive: str  # "1000", "10000" … or "corpus"
    n: int  # posts in the archive
    tool: str
    seconds: float
    posts_per_s: float | None
    peak_rss_mb: float
    runs: tuple[Run, ...]
    cpu_s: float | None = None  # median CPU seconds of the process tree
    cores_busy: float | None = None  # median of each run's CPU seconds ÷ wall seconds

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["runs"] = [{"seconds": r.seconds, "peak_rss_mb": r.peak_rss_mb, "returncode": r.returncode,
                      "cpu_seconds": r.cpu_seconds} for r in self.runs]
        return d


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def _rss_kb(pid: int) -> int:
    """Proportional set size (shared pages split between their users) where the kernel has it, else RSS.

    Worker processes share most of their pages with the process they were forked from; adding up their
    RSS would count those pages once per worker.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_kb(pid: int) -> int:
    """Sum of the resident memory of ``pid`` and all its descendants, right now."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += _rss_kb(p)
        stack.extend(_children(p))
    return total


def run(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion; its stdout+stderr are kept (for error messages), not printed."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    stop = threading.Event()
    chunks: list[bytes] = []

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_kb(proc.pid))
            stop.wait(SAMPLE_SECONDS)

    def drain() -> None:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(65536), b""):  # type: ignore[union-attr]
            chunks.append(chunk)

    sampler = threading.Thread(target=sample, daemon=True)
    reader = threading.Thread(target=drain, daemon=True)
    sampler.start()
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kb = max(peak, usage.ru_maxrss)
    return Run(seconds, peak_kb / 1024, proc.returncode, b"".join(chunks).decode("utf-8", "replace"),
               cpu_seconds=usage.ru_utime + usage.ru_stime)


def summarize(
    case: str, archive: str, n: int, tool: str, runs: Sequence[Run], posts: int | None = None
) -> Summary:
    """Median wall time, CPU time, cores kept busy and peak memory; posts/s from the median time (``posts``
    defaults to n)."""
    secs = statistics.median(r.seconds for r in runs)
    cpu = [r.cpu_seconds for r in runs if r.cpu_seconds is not None and r.seconds > 0]
    if len(cpu) < len(runs):  # some run was not measured (a service's): no figure rather than a partial one
        cpu = []
    count = n if posts is None else posts
    return Summary(
        case=case, archive=archive, n=n, tool=tool, seconds=round(secs, 4),
        posts_per_s=round(count / secs, 1) if secs > 0 and count else None,
        peak_rss_mb=round(statistics.median(r.peak_rss_mb for r in runs), 1), runs=tuple(runs),
        cpu_s=round(statistics.median(cpu), 3) if cpu else None,
        cores_busy=round(statistics.median(c / r.seconds for c, r in zip(cpu, runs, strict=True)), 3) if cpu else None,
    )

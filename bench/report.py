"""The results as a table (stdout) and as JSON (``bench/results/*.json``) with the machine they came from."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from .measure import Summary

COLUMNS = ("archive", "case", "tool", "median s", "posts/s", "peak MB", "÷ hugo s", "÷ hugo MB", "cpu s", "cores")


def _hugo_cold(results: Sequence[Summary]) -> dict[str, Summary]:
    return {r.archive: r for r in results if r.tool == "hugo" and r.case == "cold"}


def table(results: Sequence[Summary]) -> str:
    """One line per (archive, case, tool); our rows carry the ratio to Hugo's cold build of the same archive.

    Hugo rebuilds everything every time, so its cold build is also what a new, edited or deleted post costs it.
    """
    hugo = _hugo_cold(results)
    rows = [COLUMNS]
    for r in results:
        h = hugo.get(r.archive)
        ratio_s = ratio_mb = ""
        if h is not None and r.tool == "syndicator" and h.seconds > 0:
            ratio_s = f"{r.seconds / h.seconds:.2f}"
            ratio_mb = f"{r.peak_rss_mb / h.peak_rss_mb:.2f}" if h.peak_rss_mb else ""
        rows.append((
            r.archive, r.case, r.tool, f"{r.seconds:.3f}",
            f"{r.posts_per_s:,.0f}" if r.posts_per_s else "", f"{r.peak_rss_mb:.0f}", ratio_s, ratio_mb,
            f"{r.cpu_s:.2f}" if r.cpu_s is not None else "", f"{r.cores_busy:.2f}" if r.cores_busy is not None else "",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for k, row in enumerate(rows):
        cells = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, object]:
    """What the numbers came from: cores, CPU model, memory, load, Python, OS."""
    info: dict[str, object] = {
        "cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
        "loadavg": os.getloadavg(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), "")
        meminfo = Path("/proc/meminfo").read_text().split()
        info["mem_gb"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return info


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                       cwd=Path(__file__).parent)
    return r.stdout.strip()


def write_json(
    folder: Path, results: Sequence[Summary], notes: Sequence[str], args: argparse.Namespace, seconds: float,
    hugo_version: str,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    path = folder / f"{now:%Y%m%dT%H%M%SZ}.json"
    hugo = _hugo_cold(results)
    doc = {
        "when": now.isoformat(timespec="seconds"), "commit": _commit(), "machine": machine(),
        "hugo": hugo_version, "runs": args.runs, "seed": args.seed, "total_seconds": round(seconds, 1),
        "notes": list(notes),
        "results": [
            {**r.as_dict(), "ratio_to_hugo_cold": (
                round(r.seconds / hugo[r.archive].seconds, 3) if r.archive in hugo and r.tool == "syndicator" else None
            ), "memory_ratio_to_hugo_cold": (
                round(r.peak_rss_mb / hugo[r.archive].peak_rss_mb, 3)
                if r.archive in hugo and r.tool == "syndicator" and hugo[r.archive].peak_rss_mb else None
            )}
            for r in results
        ],
    }
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    return path

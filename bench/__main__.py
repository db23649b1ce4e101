"""``python -m bench``: the syndicator benchmark (and Hugo side by side when ``hugo`` is on PATH).

    python -m bench                              N = 1,000, 10,000, 100,000 and the real corpus, every case
    python -m bench --n 10000 --case cold        one case on one size
    python -m bench --n 1000 --runs 5 --no-hugo
    python -m bench --n                          only the real corpus

Prints a table and writes ``bench/results/<time>.json``. Run it under ``nice`` on a shared machine
(``make bench`` does). Archives are generated once into ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import cases, hugo, report
from .cases import BenchError, Workspace
from .measure import Summary, summarize

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "posts"
ALL_CASES = ("cold", "noop", "incremental", "render", "watch")


def _cold_side_by_side(ws: Workspace, runs: int, with_hugo: bool) -> list[Summary]:
    """Cold sync and Hugo's build alternated run by run, so a busy neighbour slows both alike."""
    ours, theirs = [], []
    for _ in range(runs):
        ours.extend(cases.cold(ws, 1).runs)
        if with_hugo:
            theirs.extend(hugo.build(ws, 1).runs)
    out = [summarize("cold", ws.name, ws.n, "syndicator", ours)]
    if with_hugo:
        out.append(summarize("cold", ws.name, ws.n, "hugo", theirs))
    return out


def run_archive(ws: Workspace, chosen: list[str], runs: int, with_hugo: bool, notes: list[str]) -> list[Summary]:
    results: list[Summary] = []
    use_hugo = with_hugo and "cold" in chosen
    if use_hugo:
        try:
            results.append(hugo.ready(ws))
        except BenchError as exc:
            notes.append(f"{ws.name}: hugo cannot build this archive ({exc})")
            use_hugo = False
    for case in chosen:
        print(f"  {ws.name}: {case} …", file=sys.stderr, flush=True)
        if case == "cold":
            results.extend(_cold_side_by_side(ws, runs, use_hugo))
        else:
            got = cases.CASES[case](ws, runs)
            results.extend(got if isinstance(got, list) else [got])
    ws.empty_trash()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[1000, 10000, 100000],
                    help="archive sizes (`--n` alone: none, e.g. only the real corpus)")
    ap.add_argument("--case", dest="cases", action="append", choices=ALL_CASES,
                    help="only this case (repeatable; default all)")
    ap.add_argument("--runs", type=int, default=3, help="runs per case; the median is reported (default 3)")
    ap.add_argument("--seed", type=int, default=cases.DEFAULT_SEED)
    ap.add_argument("--prefill", choices=("sync", "bulk"), default="sync",
                    help="how noop/incremental/render get a filled database: a cold sync (default) or "
                         "bulk_load (fast at 100,000 posts; near-duplicates stay separate stories)")
    ap.add_argument("--no-hugo", action="store_true", help="skip the Hugo comparison")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="real corpus folder (default ../shared/corpus/posts)")
    ap.add_argument("--no-corpus", action="store_true", help="skip the real corpus")
    ap.add_argument("--work", type=Path, default=ROOT / "var" / "bench", help="archives, databases, outputs")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    args = ap.parse_args(argv)
    chosen = [c for c in ALL_CASES if c in (args.cases or ALL_CASES)]
    notes: list[str] = []
    with_hugo = not args.no_hugo and hugo.hugo_path() is not None
    if not args.no_hugo and not with_hugo:
        notes.append("hugo is not on PATH: no comparison (install the Debian package `hugo` to get one)")
    args.work.mkdir(parents=True, exist_ok=True)
    cases.compile_package()
    started = time.time()
    results: list[Summary] = []
    try:
        for n in args.n:
            print(f"archive of {n} posts …", file=sys.stderr, flush=True)
            ws = cases.make_workspace(args.work, n, args.seed)
            ws.prefill = args.prefill
            results.extend(run_archive(ws, chosen, args.runs, with_hugo, notes))
        if not args.no_corpus:
            if args.corpus.is_dir():
                print("real corpus …", file=sys.stderr, flush=True)
                ws = cases.corpus_workspace(args.work, args.corpus)
                results.extend(run_archive(ws, chosen, args.runs, with_hugo, notes))
            else:
                notes.append(f"real corpus not found at {args.corpus}: skipped")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(report.table(results))
    for note in notes:
        print(f"note: {note}")
    path = report.write_json(args.results, results, notes, args, time.time() - started, hugo.version())
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

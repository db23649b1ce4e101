"""The benchmark runs end to end on a tiny archive (timings are the benchmark's business, not the suite's)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is a folder of the repository, not part of the installed package

from bench import measure  # noqa: E402
from bench.cases import compile_package  # noqa: E402
from bench.floor import STAGES  # noqa: E402
from bench.generate import Generator, generate  # noqa: E402


def test_generator_is_deterministic_and_seed_shaped(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", 60, seed=3)
    b = generate(tmp_path / "b", 60, seed=3)
    names = sorted(p.name for p in a.iterdir())
    assert len(names) == 60 and names == sorted(p.name for p in b.iterdir())
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    posts = list(Generator(3).posts(300))
    assert 10 <= sum(p.duplicate_of is not None for p in posts) <= 60  # ~10 % near-duplicates
    text = posts[5].data.decode("utf-8")
    assert text.startswith("---\ntitle: ") and "原标题：" in text and "[责任编辑：" in text
    # headlines are as distinct as the real corpus's (2,329 of 2,353): a re-post keeps its headline, other
    # posts do not share one (a shared headline makes every post a candidate to verify against)
    many = list(Generator(3).posts(3000))
    heads = {p.data.decode("utf-8").split("\n")[1].removeprefix("title: ").split("_")[0] for p in many}
    originals = sum(p.duplicate_of is None for p in many)
    assert len(heads) >= 0.97 * originals
    # a window of the archive is the same posts as the archive itself
    assert [p.data for p in Generator(3).posts(5, start=200)] == [p.data for p in posts[200:205]]


def test_bench_runs_every_case_on_a_tiny_archive(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bench", "--n", "12", "--runs", "1", "--no-hugo", "--no-corpus",
           "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cold" in done.stdout and "median s" in done.stdout
    (result,) = (tmp_path / "results").glob("*.json")
    doc = json.loads(result.read_text(encoding="utf-8"))
    cases = {(r["case"], r["tool"]) for r in doc["results"]}
    assert {("cold", "syndicator"), ("noop", "syndicator"), ("new", "syndicator"), ("edit", "syndicator"),
            ("delete", "syndicator"), ("render", "syndicator"), ("watch-new", "syndicator"),
            ("watch-edit", "syndicator"), ("watch-delete", "syndicator")} <= cases
    assert all(r["peak_rss_mb"] > 0 and r["seconds"] > 0 for r in doc["results"])
    cold = next(r for r in doc["results"] if r["case"] == "cold")
    assert cold["cpu_s"] > 0 and cold["cores_busy"] > 0 and all(run["cpu_seconds"] > 0 for run in cold["runs"])
    assert doc["machine"]["cpus"] >= 1


def test_bench_prefill_bulk_fills_the_database_for_noop(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bench", "--n", "12", "--runs", "1", "--no-hugo", "--no-corpus", "--prefill", "bulk",
           "--case", "noop", "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "noop" in done.stdout  # a no-op: every file's state was recorded by the bulk fill
    atom = (tmp_path / "work" / "run-12" / "feeds" / "all.atom").read_text(encoding="utf-8")
    assert atom.count("<entry>") == 12


def test_the_floor_measures_every_stage_on_a_tiny_archive(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bench.floor", "--n", "12", "--runs", "1", "--no-hugo", "--work", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(stage in done.stdout for stage in STAGES) and "best on" in done.stdout


def test_memory_sampling_reads_proc_at_most_ten_times_a_second(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Reading PSS walks page tables: sampled every 20 ms it took a second of CPU from a 3.5 s sync it timed."""
    reads = []
    real = measure.tree_rss_kb
    monkeypatch.setattr(measure, "tree_rss_kb", lambda pid: reads.append(pid) or real(pid))
    run = measure.run([sys.executable, "-c", "import time; time.sleep(1)"])
    assert run.returncode == 0 and run.peak_rss_mb > 1
    assert len(reads) <= 11 * run.seconds + 1


def test_the_benchmark_times_the_package_compiled_as_installed(tmp_path: Path) -> None:
    """With PYTHONDONTWRITEBYTECODE set, every timed command compiled the package again; the bench writes the
    bytecode first, as an installed copy has it."""
    cached = Path(importlib.util.cache_from_source(str(REPO / "syndicator" / "publish.py")))
    cached.unlink(missing_ok=True)
    compile_package()
    assert cached.is_file()

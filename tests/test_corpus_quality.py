"""The quality report runs end to end (a real sync into a temporary database) on the real fixture posts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

FIXTURES = REPO / "tests" / "data" / "normalize"


def test_quality_report_on_the_fixture_posts() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SYNDICATOR_DATABASE_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.corpus_quality", str(FIXTURES), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    q = json.loads(proc.stdout)
    n = len(list(FIXTURES.glob("*.md")))
    assert (q["files_read"], q["articles_stored"], q["rejected"]) == (n, n, {})
    for residue in ("boilerplate", "repeated_teaser", "repeated_paragraph", "channel_suffix", "name_line_left",
                    "stray_punctuation", "invisible_chars", "related_left"):
        assert q[residue] == 0, (residue, q["examples"])
    assert q["author_named"] >= 4 and q["author_found"] == q["author_named"]
    assert q["date_exact"] == q["date_in_field"] >= 6
    assert q["date_source"] == {"front_matter": q["date_in_field"], "file_mtime": n - q["date_in_field"]}


def test_quality_report_text_output() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.corpus_quality", str(FIXTURES)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["files", "read"] and "author found (named)" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "bench.corpus_quality", str(FIXTURES / "nope")], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "not a folder" in bad.stderr

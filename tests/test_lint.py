"""``syndicator lint``: per-file problems from real corpus posts, a summary, exit 1 only on rejected files,
and never a database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from conftest import REPO, write_config

from syndicator.cli import main

FIXTURES = REPO / "tests" / "data" / "normalize"


def folder_of_posts(tmp_path: Path) -> Path:
    """The real corpus fixtures, plus a duplicate and an unknown title suffix."""
    folder = tmp_path / "posts"
    folder.mkdir()
    for p in FIXTURES.glob("*.md"):
        shutil.copy2(p, folder / p.name)
    shutil.copy2(FIXTURES / "glued_channel.md", folder / "glued_channel copy.md")
    (folder / "suffix.md").write_text(
        "---\ntitle: 洞见_不闹革命的文化批评\ndate: 2019-02-21 16:48\n---\n正文第一段。\n", encoding="utf-8"
    )
    (folder / "odd_date.md").write_text(
        "---\ntitle: 救人\ndate:  图为救人现场\n---\n2019年2月21日，一名男子在街头晕倒。\n", encoding="utf-8"
    )
    return folder


def lint(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner(env=env).invoke(main, ["lint", *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def test_lint_reports_each_problem_and_a_summary(tmp_path: Path) -> None:
    folder = folder_of_posts(tmp_path)
    config = write_config(tmp_path, folder, db_url=f"sqlite:///{tmp_path / 'db' / 'never.db'}")
    code, out = lint(str(folder), env={"SYNDICATOR_CONFIG": str(config)})
    assert code == 0, out
    lines = out.splitlines()
    problems = [line for line in lines if line.startswith(str(folder))]
    by_kind = {line.split(": ")[1] for line in problems}
    assert {"no_date", "broken_yaml", "stacked_front_matter", "non_utf8", "unknown_title_suffix", "duplicate"} <= by_kind
    junk = next(line for line in problems if "house_junk_date.md: no_date" in line)
    assert "'楼盘价格 :' holds no date (known page text); using the file's modification time" in junk
    odd = next(line for line in problems if "odd_date.md: no_date" in line)
    assert odd.endswith("date field '图为救人现场' holds no date; using the date stated in the body's opening (2019-02-21 00:00)")
    assert f"{folder}/gbk.md: non_utf8: decoded as gbk" in out
    assert f"{folder}/glued_channel.md: duplicate: same text as {folder}/glued_channel copy.md" in out
    assert "suffix.md: unknown_title_suffix: title '洞见_不闹革命的文化批评'" in out
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["problem", "files"]
    assert "files read" in out and table[-1].split() == ["articles", str(len(list(folder.glob("*.md"))))]
    assert not (tmp_path / "db").exists()  # lint never opens the database


def test_lint_exits_1_when_a_file_is_no_article(tmp_path: Path) -> None:
    folder = folder_of_posts(tmp_path)
    (folder / "binary.md").write_bytes(b"\x00\x01\x02PNG" * 100)
    (folder / "blank.md").write_text(" \n\u3000\n", encoding="utf-8")
    (folder / "fm_only.md").write_text("---\ntitle: \ndate: 2019-01-01 10:00\n---\n \n", encoding="utf-8")
    code, out = lint(str(folder), "--json")
    assert code == 1
    doc = json.loads(out)
    rejected = {Path(p["file"]).name: p["detail"] for p in doc["problems"] if p["kind"] == "rejected"}
    assert rejected == {
        "binary.md": "binary file, not an article",
        "blank.md": "empty file, not an article",
        "fm_only.md": "no title and no body, not an article",
    }
    assert doc["rejected"] == 3 and doc["summary"]["rejected"] == 3
    assert doc["files"] == doc["articles"] + 3


def test_lint_without_path_reads_the_configured_archives(tmp_path: Path) -> None:
    folder = folder_of_posts(tmp_path)
    config = write_config(tmp_path, folder)
    code, out = lint("--json", env={"SYNDICATOR_CONFIG": str(config)})
    assert code == 0
    doc = json.loads(out)
    assert doc["files"] == len(list(folder.glob("*.md"))) and doc["rejected"] == 0


def test_lint_from_the_shell_in_a_folder_without_config(tmp_path: Path) -> None:
    """What a newsroom's CI does: ``syndicator lint PATH`` in a checkout, no config, no database."""
    folder_of_posts(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("SYNDICATOR_CONFIG", "SYNDICATOR_DATABASE_URL")}
    proc = subprocess.run(
        [sys.executable, "-m", "syndicator", "lint", "posts"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "posts/gbk.md: non_utf8: decoded as gbk" in proc.stdout
    assert not list(tmp_path.rglob("*.db"))

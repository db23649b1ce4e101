"""The W3C feed validator (https://github.com/w3c/feedvalidator, run offline) on feeds made from hostile input.

Optional like tests/render/test_validator.py: set SYNDICATOR_FEEDVALIDATOR to its ``src`` folder (and
SYNDICATOR_FEEDVALIDATOR_PYTHON to a Python with html5lib). The feeds come from a real sync of the
hostile archive (markup, control characters, 10,000-character title, 5 MB body, dates before 1970 and in
the future); the validator must report no error, and only the warnings listed in docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_config

from syndicator.cli import main

from .test_hostile import HOSTILE_HTML, TEXT, post

SRC = os.environ.get("SYNDICATOR_FEEDVALIDATOR")
PYTHON = os.environ.get("SYNDICATOR_FEEDVALIDATOR_PYTHON", sys.executable)
DRIVER = """
import sys
sys.path.insert(0, sys.argv[1])
import feedvalidator
from feedvalidator import compatibility
from feedvalidator.formatter.text_plain import Formatter
from feedvalidator.logging import Error, Warning
with open(sys.argv[2], "rb") as fh:
    events = feedvalidator.validateStream(fh, contentType=sys.argv[4], base=sys.argv[3])["loggedEvents"]
for e in events:
    kind = "error" if isinstance(e, Error) else "warning" if isinstance(e, Warning) else "info"
    print(kind, type(e).__name__, e.params.get("parent", "-"), e.params.get("element", "-"), repr(e.params.get("value", ""))[:60].replace(" ", "_"))
"""
# Warnings the validator gives for what the hostile input puts inside entries (see docs/RELIABILITY.md)
ACCEPTED_WARNINGS = {
    "ContainsHTML",  # an RSS title holding the text "<script>…": plain text, escaped once, as RSS 2.0 says
    "ContainsUndeclaredHTML",  # the same in an Atom type="text" title/summary: text, never markup
    "DuplicateUpdated",  # several stories published in the same minute
    "ImplausibleDate",  # a date before 1970, kept as the source gave it (sorted last)
}
pytestmark = pytest.mark.skipif(not SRC, reason="SYNDICATOR_FEEDVALIDATOR (feedvalidator src folder) not set")


def test_feeds_from_hostile_input_pass_the_w3c_validator(tmp_path: Path) -> None:
    arch = tmp_path / "archive"
    arch.mkdir()
    for n, bad in enumerate(HOSTILE_HTML):
        (arch / f"{n:02d}.md").write_text(post(f"标题{n}<script>x</script>", f"{TEXT}{n}\n{bad}\n{TEXT}"),
                                          encoding="utf-8")
    controls = "".join(chr(c) for c in range(1, 32) if c not in (9, 10, 13)) + "\ufffe\uffff"
    (arch / "controls.md").write_text(post(f"控制{controls}", TEXT * 20 + controls), encoding="utf-8")
    (arch / "long.md").write_text(post("长" * 10_000, TEXT + "长"), encoding="utf-8")
    (arch / "old.md").write_text(post("旧", TEXT + "旧", date="1900-01-01 00:00"), encoding="utf-8")
    (arch / "future.md").write_text(post("未来", TEXT + "未来", date="2090-01-01 00:00"), encoding="utf-8")
    config = write_config(tmp_path, arch, site={"title": "测试", "base_url": "https://news.example.org/"})
    result = CliRunner().invoke(main, ["--config", str(config), "sync", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    seen: dict[str, set[str]] = {}
    for path in sorted((tmp_path / "feeds").rglob("*")):
        if path.suffix not in (".atom", ".rss"):
            continue
        rel = path.relative_to(tmp_path / "feeds").as_posix()
        media = "application/atom+xml" if path.suffix == ".atom" else "application/rss+xml"
        out = subprocess.run([PYTHON, "-c", DRIVER, str(SRC), str(path), f"https://news.example.org/{rel}",
                              f"{media}; charset=utf-8"], capture_output=True, text=True, timeout=120, check=True)
        for line in out.stdout.splitlines():
            kind, name = line.split()[:2]
            seen.setdefault(kind, set()).add(name)
    print("\nvalidator:", {k: sorted(v) for k, v in seen.items()})
    assert not seen.get("error"), seen
    assert seen.get("warning", set()) <= ACCEPTED_WARNINGS, seen

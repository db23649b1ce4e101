"""archive.walk: relative paths exactly as os.path.relpath gives them, in a stable order."""

from __future__ import annotations

import os
from pathlib import Path

from syndicator.sources.archive import walk


def test_walk_gives_relative_paths_of_post_files_only(tmp_path: Path) -> None:
    root = tmp_path / "posts"
    (root / "b" / "c").mkdir(parents=True)
    for rel in ("z.md", "a b|*.md", "b/y.txt", "b/c/x.markdown", "b/c/skip.png", ".hidden.md", "全角　名.md"):
        (root / rel).write_text("x", encoding="utf-8")
    got = list(walk(root))
    assert [rel for rel, _ in got] == ["a b|*.md", "z.md", "全角　名.md", "b/y.txt", "b/c/x.markdown"]
    assert all(rel == os.path.relpath(full, root) for rel, full in got)

"""Reading back what a run left behind: the database rows to compare (time columns left out; read through
``databases.Database``) and the output folder."""

from __future__ import annotations

from pathlib import Path

import feedparser

# time-of-run columns differ between two runs by nature; everything else must be equal
QUERIES = {
    "articles": "SELECT id, key, story_id, title, channel, published, content_hash, version, withdrawn_at IS NULL "
                "FROM articles ORDER BY id",
    "stories": "SELECT id, canonical_article_id, published, updated, member_count, withdrawn FROM stories ORDER BY id",
    "story_tags": "SELECT st.story_id, t.name, t.slug FROM story_tags st JOIN tags t ON t.id = st.tag_id "
                  "ORDER BY 1, 2",
    "article_tags": "SELECT at.article_id, t.name FROM article_tags at JOIN tags t ON t.id = at.tag_id ORDER BY 1, 2",
    "source_items": "SELECT key, size, mtime_ns, raw_hash, article_id, error FROM source_items ORDER BY key",
    "article_versions": "SELECT article_id, version, content_hash FROM article_versions ORDER BY 1, 2",
}


def files(out: Path) -> dict[str, bytes]:
    """Every regular file below ``out`` (relative POSIX path → bytes)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


_checked: dict[tuple[int, int, int, int], str] = {}  # files already found complete (atomic writes: a new file is a new inode)


def check_outputs(out: Path) -> list[str]:
    """Problems with the files a reader could fetch: every feed parses cleanly, every page is complete."""
    problems = []
    if not out.exists():
        return problems
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.name.startswith(".") or not path.is_file():
            continue  # temporary and marker files: never served
        st = path.stat()
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if key in _checked:
            continue
        data = path.read_bytes()
        before = len(problems)
        if rel.endswith((".atom", ".rss")):
            parsed = feedparser.parse(data)
            if parsed.bozo:
                problems.append(f"{rel}: {parsed.get('bozo_exception')}")
            ids = [e.id for e in parsed.entries]
            if len(ids) != len(set(ids)):
                problems.append(f"{rel}: duplicate entry ids")
        elif rel.endswith(".html") and not data.rstrip().endswith(b"</html>"):
            problems.append(f"{rel}: truncated page")
        elif rel.endswith(".opml") and not data.rstrip().endswith(b"</opml>"):
            problems.append(f"{rel}: truncated OPML")
        if len(problems) == before:
            _checked[key] = rel
    return problems


def entry_ids(out: Path) -> dict[str, list[str]]:
    return {
        rel: [e.id for e in feedparser.parse(data).entries]
        for rel, data in files(out).items()
        if rel.endswith((".atom", ".rss")) and not rel.rsplit("/", 1)[-1].startswith(".")
    }

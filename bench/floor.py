"""``python -m bench.floor``: the least CPU a cold sync of this design can cost, stage by stage, beside Hugo.

A cold sync has to read every post and its front matter, sanitize its body, fingerprint it for near-duplicates,
store it and write the per-tag feeds. This measures only that, each stage done the cheapest way with the
libraries the pipeline is built on and nothing of ours around it: no normalizing rules, no dates, no
decisions, no pages, no digests, the rows written in one executemany per table:

- read + front matter: the file's bytes, UTF-8, PyYAML's C loader;
- sanitize: ``nh3.clean`` of the body;
- fingerprint: ``syndicator.dedup.fingerprint`` (the near-duplicate index's own: NFKC, the anchored 5-grams,
  rensa's MinHash, the band keys), since stored band keys depend on exactly it, of the text it is given in a sync
  (the normalized text: shorter than the raw body; it is made untimed, by the normalizer);
- store: SQLAlchemy Core, one transaction, articles and their tag rows;
- feeds: feedgen, RSS and Atom for every tag and for everything, the newest ``MAX_ENTRIES`` each.

The first three run per file and could be spread over every core; storing is one writer. So the best any
implementation of this design could do on ``cores`` cores is ``max(all stages / cores, store)`` plus the
interpreter's start and imports. Measured in a fresh interpreter (``--measure``), its CPU seconds, not wall
time: the machines are noisy, and a floor must not depend on what else they run.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .cases import MAX_ENTRIES, REPO, compile_package, make_workspace

STAGES = ("start-up and imports", "read + front matter", "sanitize", "fingerprint", "store", "feeds")
PER_FILE = ("read + front matter", "sanitize", "fingerprint")


def _front_matter(text: str) -> tuple[str, str]:
    """(front matter, body) of a well-formed post. Not ``normalize.frontmatter.split_blocks``: the floor is the
    least work, and that one's tolerance (stacked, broken and unclosed blocks) is the pipeline's own."""
    if not text.startswith("---"):
        return "", text
    end = text.find("\n---", 3)
    if end < 0:
        return "", text
    return text[3:end], text[end + 4 :]


@functools.cache
def _settings() -> Any:
    from syndicator.config import Settings

    return Settings()


def _normalized_text(path: Path, data: bytes, title: str, body: str) -> tuple[str, str]:
    """The text and title a sync fingerprints (the raw ones where the normalizer finds no article). Imported
    here, on the first file's untimed turn: the normalizer is not part of the floor, nor of its start-up."""
    from syndicator.errors import ParseError
    from syndicator.normalize import normalize_item
    from syndicator.types import RawItem

    settings = _settings()
    raw = RawItem(source="floor", key=path.name, timezone="Asia/Shanghai", data=data, path=path.name)
    try:
        article = normalize_item(raw, settings.normalize, settings.tags)
    except ParseError:
        return body, title
    return article.content_text, article.title


def measure(posts: Path) -> dict[str, float]:
    """CPU seconds of each stage over every file of ``posts``, in this process (start-up: all it spent before)."""
    import nh3
    import sqlalchemy as sa
    import yaml
    from feedgen.feed import FeedGenerator

    from syndicator.dedup import fingerprint
    from syndicator.normalize.tags import split_tags

    cpu: Callable[[], float] = time.process_time
    spent: dict[str, float] = collections.Counter()
    spent["start-up and imports"] = cpu()  # the interpreter's start and every import, this module's included
    articles: list[dict[str, object]] = []
    article_tags: list[dict[str, object]] = []
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for i, path in enumerate(sorted(p for p in posts.iterdir() if p.is_file())):
        t0 = cpu()
        data = path.read_bytes()
        text = data.decode("utf-8", "replace")
        head, body = _front_matter(text)
        try:
            meta = yaml.load(head, Loader=yaml.CSafeLoader) or {}
        except yaml.YAMLError:
            meta = {}
        if not isinstance(meta, dict):
            meta = {}
        title = str(meta.get("title") or "")
        t1 = cpu()
        html = nh3.clean(body)
        t2 = cpu()
        text_now, title_now = _normalized_text(path, data, title, body)  # untimed: not part of the floor
        t3 = cpu()
        fp = fingerprint(text_now, title_now)
        t4 = cpu()
        spent["read + front matter"] += t1 - t0
        spent["sanitize"] += t2 - t1
        spent["fingerprint"] += t4 - t3
        articles.append({"id": i, "title": title, "html": html, "bands": len(fp.bands),
                         "published": base + timedelta(minutes=i)})
        article_tags.extend({"article_id": i, "tag": tag} for tag in split_tags(meta.get("tags")))
    t0 = cpu()
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/floor.db")
        md = sa.MetaData()
        art = sa.Table("article", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.Text),
                       sa.Column("html", sa.Text), sa.Column("bands", sa.Integer),
                       sa.Column("published", sa.DateTime(timezone=True)))
        tags = sa.Table("article_tag", md, sa.Column("article_id", sa.Integer), sa.Column("tag", sa.Text))
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(art.insert(), articles)
            if article_tags:
                conn.execute(tags.insert(), article_tags)
        engine.dispose()
        spent["store"] = cpu() - t0
        t0 = cpu()
        by_tag: dict[str, list[int]] = collections.defaultdict(list)
        for row in article_tags:
            by_tag[str(row["tag"])].append(int(str(row["article_id"])))
        by_tag[""] = list(range(len(articles)))  # everything
        for n, (tag, ids) in enumerate(by_tag.items()):
            for fmt in ("rss", "atom"):
                fg = FeedGenerator()
                fg.id(f"urn:floor:{n}")
                fg.title(tag or "all")
                fg.link(href=f"http://127.0.0.1/{n}", rel="alternate")
                fg.description(tag or "all")
                for a in ids[-MAX_ENTRIES:]:
                    post = articles[a]
                    fe = fg.add_entry(order="append")
                    fe.id(f"urn:floor:article:{a}")
                    fe.title(str(post["title"]) or "untitled")
                    fe.link(href=f"http://127.0.0.1/a/{a}")
                    fe.published(post["published"])
                    fe.updated(post["published"])
                    fe.content(str(post["html"]), type="html")
                data = fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True)
                Path(tmp, f"{n}.{fmt}").write_bytes(data)
        spent["feeds"] = cpu() - t0
    return dict(spent)


def floor_seconds(spent: dict[str, float], cores: int) -> float:
    """The best wall time on ``cores`` cores: start-up, then the rest spread, but never under the one writer."""
    rest = sum(v for k, v in spent.items() if k != "start-up and imports")
    return spent.get("start-up and imports", 0.0) + max(rest / max(cores, 1), spent.get("store", 0.0))


def _measured(posts: Path) -> dict[str, float]:
    """One measurement in a fresh interpreter (its start-up and imports count, as they do for a user)."""
    done = subprocess.run([sys.executable, "-m", "bench.floor", "--measure", str(posts)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"floor: the measurement failed: {done.stderr.strip()[-400:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="archive size (generated as by python -m bench)")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported (default 3)")
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench", help="archives and Hugo sites")
    parser.add_argument("--no-hugo", action="store_true", help="skip Hugo")
    parser.add_argument("--archive", type=Path, help="a folder of posts instead of a generated archive (no Hugo)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the fresh interpreter's part
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return 0
    # imported here: the measuring interpreter (``--measure``) must not count the normalizer in its start-up
    from syndicator.parallel import cpu_count

    from . import hugo

    compile_package()
    if args.archive is not None:
        posts, n = args.archive, sum(1 for p in args.archive.iterdir() if p.is_file())
    else:
        ws = make_workspace(args.work, args.n)
        posts, n = ws.archive, args.n
    cores = cpu_count()
    with_hugo = args.archive is None and not args.no_hugo and hugo.hugo_path() is not None
    if with_hugo:
        hugo.ready(ws)
    runs: list[dict[str, float]] = []
    hugo_seconds: list[float] = []
    ratios: list[float] = []
    for _ in range(max(args.runs, 1)):
        # alternating, run by run: a busy moment of the machine slows both sides of a ratio alike
        runs.append(_measured(posts))
        if with_hugo:
            hugo_seconds.append(hugo.build(ws, 1).seconds)
            ratios.append(floor_seconds(runs[-1], cores) / hugo_seconds[-1])
    if with_hugo:
        ws.empty_trash()
    spent = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in STAGES}
    total = sum(spent.values())
    print(f"floor of a cold sync of {n:,} posts (CPU seconds, medians of {len(runs)}):")
    for k in STAGES:
        mark = "per file" if k in PER_FILE else ""
        print(f"  {k:22s} {spent[k]:7.2f} s  {spent[k] / n * 1e6:6.0f} µs a post  {mark}")
    print(f"  {'all':22s} {total:7.2f} s  {total / n * 1e6:6.0f} µs a post")
    best = floor_seconds(spent, cores)
    print(f"best on {cores} core(s): {best:.2f} s")
    if ratios:
        print(f"hugo (wall, alternating with the above): {statistics.median(hugo_seconds):.2f} s "
              f"[{min(hugo_seconds):.2f}–{max(hugo_seconds):.2f}]; floor ÷ hugo, run by run: "
              f"{statistics.median(ratios):.2f} [{min(ratios):.2f}–{max(ratios):.2f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

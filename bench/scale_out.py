"""Scale-out figures for docs/SCALING.md: polls/s per worker, render time per feed, rows and bytes per story.

    nice .venv/bin/python -m bench.scale_out [--posts N] [--seconds S]

Needs the PostgreSQL at 127.0.0.1:5432 (database ``test``) and the corpus at ``../shared/corpus`` (relative
to the repository). Works in a schema of its own, dropped at the end. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import yaml

from syndicator import config as config_mod
from syndicator.coordination import Worker
from syndicator.publish import publish_keys
from syndicator.storage.engine import open_database
from syndicator.storage.leases import Leases
from syndicator.storage.repo import Repository
from syndicator.sync import sync

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "posts"
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def settings_for(folder: Path, url: str, sources: list[dict[str, Any]], **extra: Any) -> config_mod.Settings:
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    data.update({"database": {"url": url}, "output": {"dir": str(folder / "feeds")}, "sources": sources,
                 "allow_private_networks": True, "http": {"min_interval": "0s"},
                 "cluster": {"poll_batch": 5}, "schedule": {"tick": "0.05s"}, **extra})
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return config_mod.load(path)


def median_seconds(fn: Any, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def polls_per_second(worker: Worker, seconds: float) -> float:
    with worker.leases.engine.begin() as conn:  # every source due now
        from sqlalchemy import text

        conn.execute(text("UPDATE leases SET due_at = timezone('UTC', now()) WHERE kind = 'poll'"))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += worker.tick_polls().polls
    return done / (time.perf_counter() - start)


def run_loop_polls_per_second(settings: config_mod.Settings, url: str, seconds: float) -> float:
    """Polls per second of one worker's real loop (``Worker.run``: poll threads, slot-aligned wake-ups)
    over sources due faster than it can poll."""
    w = Worker(settings, Repository(open_database(url)), holder="bench:run")
    done: list[float] = []
    seen: set[str] = set()
    poll = w._poll

    def counted(lease: Any, report: Any) -> None:
        poll(lease, report)
        done.append(time.perf_counter())
        seen.add(lease.key)

    w._poll = counted  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    warm = time.perf_counter() + 300  # warm: every source polled once (its first 200 stores an article)
    while len(seen) < len(settings.sources) and time.perf_counter() < warm:
        time.sleep(0.2)
    time.sleep(1)
    start, before = time.perf_counter(), len(done)
    time.sleep(seconds)
    rate = (len(done) - before) / (time.perf_counter() - start)
    stop.set()
    thread.join(timeout=60)
    w.close()
    w.repo.engine.dispose()
    return rate


class NotModified(BaseHTTPRequestHandler):
    """A partner feed that has not changed: 304 to a conditional GET, else a one-item RSS."""

    BODY = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://e.cn/</link>'
            b"<description>d</description><item><title>\xe6\xa0\x87\xe9\xa2\x98</title><link>https://e.cn/1</link>"
            b"<description>\xe6\xad\xa3\xe6\x96\x87</description></item></channel></rss>")

    def do_GET(self) -> None:
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2353)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        raise SystemExit(f"the corpus is not at {CORPUS}")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotModified)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        posts = sorted(CORPUS.glob("*.md"))[: args.posts]
        (tmp / "corpus").mkdir()
        for p in posts:
            shutil.copy2(p, tmp / "corpus" / p.name)
        desks = []
        for i in range(30):
            (tmp / f"desk{i}").mkdir()
            shutil.copy2(posts[i], tmp / f"desk{i}" / posts[i].name)
            desks.append({"name": f"desk{i:02d}", "type": "archive", "path": str(tmp / f"desk{i}"), "every": "1s"})
        feeds = [{"name": f"feed{i:02d}", "type": "feed", "every": "1s",
                  "url": f"http://127.0.0.1:{httpd.server_address[1]}/f{i}.xml"} for i in range(30)]
        corpus_src = [{"name": "corpus", "type": "archive", "path": str(tmp / "corpus"), "every": "1h"}]
        settings = settings_for(tmp, url, corpus_src)
        repo = Repository(open_database(url))
        t = time.perf_counter()
        sync(settings, repo, render=False)
        took = time.perf_counter() - t
        stories = repo.story_count()
        print(f"sync {len(posts)} posts into PostgreSQL: {took:.1f} s ({len(posts) / took:.0f} posts/s), "
              f"{stories} stories")
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            rows = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # type: ignore[index]
                    for t in ("articles", "article_versions", "stories", "story_tags", "article_tags", "source_items")}
            size = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'", (schema,)
            ).fetchone()[0]  # type: ignore[index]
        print("rows per story: " + ", ".join(f"{k} {v / stories:.2f}" for k, v in rows.items()))
        print(f"database size per story (tables + indexes + TOAST, before outputs): {size / stories / 1024:.1f} KiB")

        # renders, as a worker does them (files and the outputs table)
        tags = sorted(repo.tags(), key=lambda x: -x.stories)
        publish_keys(settings, repo, ["feed:all", "site", *(f"feed:tags/{x.slug}" for x in tags)])  # warm
        print(f"render feed:all (atom+rss, {settings.output.max_entries} entries): "
              f"{median_seconds(lambda: publish_keys(settings, repo, ['feed:all'])) * 1000:.0f} ms median")
        print(f"render one tag feed ({tags[0].slug}, {tags[0].stories} stories): "
              f"{median_seconds(lambda: publish_keys(settings, repo, [f'feed:tags/{tags[0].slug}'])) * 1000:.0f} ms median")
        print(f"render site (index.html + feeds.opml over {len(tags)} tags): "
              f"{median_seconds(lambda: publish_keys(settings, repo, ['site']), 3) * 1000:.0f} ms median")
        ids = repo.all_story_ids()[:200]
        pages = median_seconds(lambda: publish_keys(settings, repo, [f"page:{i}" for i in ids]), 3)
        print(f"render article pages: {pages / len(ids) * 1000:.1f} ms per page (median of 3 × {len(ids)})")
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            out_rows, out_size = conn.execute(
                "SELECT count(*), pg_total_relation_size('outputs') FROM outputs").fetchone()  # type: ignore[misc]
        print(f"outputs table: {out_rows} outputs, {out_size / max(out_rows, 1) / 1024:.1f} KiB per output")
        repo.engine.dispose()

        # polls per second of one worker: unchanged archive folders, and feeds answering 304
        for name, sources in (("archive, unchanged", desks), ("feed, 304 Not Modified", feeds)):
            s2 = settings_for(tmp, url, sources)
            w = Worker(s2, Repository(open_database(url)), holder=f"bench:{name}")
            w.register()
            polls_per_second(w, 2)  # warm (first polls read the folder / the first 200)
            rate = polls_per_second(w, args.seconds)
            print(f"polls per second, one worker, {name}: {rate:.1f}")
            w.close()
            w.repo.engine.dispose()

        # the worker's real loop: poll threads over 200 feeds every second (more than one worker can poll)
        many = [{"name": f"many{i:03d}", "type": "feed", "every": "1s",
                 "url": f"http://127.0.0.1:{httpd.server_address[1]}/m{i}.xml"} for i in range(200)]
        for threads in (1, 4):
            s3 = settings_for(tmp, url, many, cluster={"poll_threads": threads, "poll_batch": threads},
                              http={"min_interval": "0s", "max_connections": threads})
            rate = run_loop_polls_per_second(s3, url, args.seconds)
            print(f"polls per second, one worker's loop ({threads} poll thread(s)), feed 304: {rate:.1f}")

        # claims alone: claim + complete per second (the coordination overhead per unit of work)
        engine = open_database(url)
        leases = Leases(engine, "bench:claims", ttl=30)
        leases.ensure("bench", [f"k{i}" for i in range(1000)], leases.now())
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds / 2:
            for lease in leases.claim("bench", limit=1):
                leases.complete(lease, None)
                done += 1
        print(f"lease claim + complete: {done / (time.perf_counter() - start):.0f} per second (one process)")
        engine.dispose()
    finally:
        httpd.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()

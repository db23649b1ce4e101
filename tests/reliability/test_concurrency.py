"""sync, render and serve at once, with readers downloading feeds in a loop, on SQLite and on PostgreSQL.

No ``database is locked`` (or any other error) reaches the user, and a reader never receives a truncated
or mixed file: every response is complete (its ETag is the hash of exactly the bytes received) and parses.
Two syncs of the same archive started at the same moment store each file once, and when everything has
finished the database is consistent (``databases.CONSISTENCY``) and the outputs are those of the final
database state.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import feedparser
from conftest import write_config

from syndicator.render.write import etag_of

from .databases import NewDatabase
from .posts import write_posts
from .state import files

POSTS = 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "syndicator", "--config", str(config), *args],
                            cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class Reader(threading.Thread):
    """Downloads the same URLs over and over; records every response that is not whole and valid."""

    def __init__(self, base: str, paths: list[str]) -> None:
        super().__init__(daemon=True)
        self.base, self.paths = base, paths
        self.stop = threading.Event()
        self.ok = 0
        self.bad: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for path in self.paths:
                try:
                    with urllib.request.urlopen(self.base + path, timeout=30) as resp:
                        body = resp.read()
                        etag = resp.headers.get("ETag", "").strip('"')
                        length = resp.headers.get("Content-Length")
                except urllib.error.HTTPError as exc:
                    if exc.code == 404:
                        continue  # not written yet
                    self.bad.append(f"{path}: HTTP {exc.code}")
                    continue
                if length is not None and int(length) != len(body):
                    self.bad.append(f"{path}: {len(body)} bytes, Content-Length {length}")
                if etag and hashlib.sha256(body).hexdigest()[:32] != etag:
                    self.bad.append(f"{path}: bytes do not match their ETag (mixed file)")
                if path.endswith((".atom", ".rss")):
                    parsed = feedparser.parse(body)
                    if parsed.bozo:
                        self.bad.append(f"{path}: {parsed.get('bozo_exception')}")
                elif not body.rstrip().endswith(b"</opml>" if path.endswith(".opml") else b"</html>"):
                    self.bad.append(f"{path}: truncated page")
                self.ok += 1


def test_sync_render_and_serve_at_once(tmp_path: Path, new_database: NewDatabase) -> None:
    archive = tmp_path / "archive"
    paths = write_posts(archive, POSTS)
    db = new_database(tmp_path)
    config = write_config(tmp_path, archive, db_url=db.url)
    (tmp_path / "feeds").mkdir()
    port = free_port()
    server = cli(config, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    readers = [Reader(base, ["all.atom", "all.rss", "index.html", "feeds.opml"]),
               Reader(base, ["tags/an-quan-sheng-chan.atom", "all.atom", "tags/chong-qing-pin-dao.rss"])]
    for r in readers:
        r.start()
    done: list[tuple[str, int, str]] = []
    try:
        # a cold database: two writers and a reader start at the very same moment (migrations race too)
        procs = [("sync", cli(config, "sync", "--no-progress")), ("sync", cli(config, "sync", "--no-progress")),
                 ("render", cli(config, "render"))]
        while any(p.poll() is None for _, p in procs[:2]):
            time.sleep(0.5)
            if procs[-1][1].poll() is not None:
                procs.append(("render", cli(config, "render")))
        # then edits and new posts while renders keep running
        for p in paths[:20]:
            p.write_text(p.read_text(encoding="utf-8") + "\n补充一段新的内容，用来更新这篇文章。\n", encoding="utf-8")
        write_posts(archive / "more", 30, seed=99)
        procs += [("sync", cli(config, "sync", "--no-progress")), ("render", cli(config, "render")),
                  ("sync", cli(config, "sync", "--no-progress"))]
        for name, p in procs:
            out, err = p.communicate(timeout=600)
            done.append((name, p.returncode or 0, (out + err).decode()))
        time.sleep(1)
    finally:
        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(timeout=60)
        server.terminate()
        server.wait(timeout=30)
    for name, code, text in done:
        assert code == 0, (name, text)
        assert "database is locked" not in text and "Traceback" not in text, (name, text)
    assert sum(r.ok for r in readers) > 20
    bad = [b for r in readers for b in r.bad]
    assert not bad, bad[:10]
    # the last sync saw every change: all posts stored once, the edits as updates
    final = cli(config, "sync", "--no-progress")
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0 and b"new=0 updated=0" in out, (out + err).decode()
    # each file stored once, whatever the two syncs that started together did; the database is consistent
    assert not db.problems()
    assert len(db.state()["articles"]) == POSTS + 30
    # no render that read the database before a sync's commit wrote its older files after that sync's render
    rerender = cli(config, "render")
    out, err = rerender.communicate(timeout=600)
    assert rerender.returncode == 0 and b"render: 0 files written" in out, (out + err).decode()
    stored = db.stored_outputs()
    if stored is not None:  # PostgreSQL: the outputs kept for web nodes are the files' bytes
        on_disk = {k: etag_of(v) for k, v in files(tmp_path / "feeds").items() if not k.rsplit("/", 1)[-1].startswith(".")}
        assert stored == on_disk, sorted(k for k in set(stored) | set(on_disk) if stored.get(k) != on_disk.get(k))[:5]
    print(f"\n{db.kind}: {len(done)} processes, {sum(r.ok for r in readers)} complete downloads, none bad")

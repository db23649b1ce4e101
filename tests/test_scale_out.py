"""Scale-out end to end: worker and web processes on one real PostgreSQL.

Workers and web nodes are real processes (``roles.run_worker`` / ``roles.run_web``, what
``syndicator run --role worker|web`` runs); sources are real folders; web nodes are real HTTP servers.
Each worker logs one line per poll naming the source and the slot it claimed, which is how the test counts
polls per source and slot across processes.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from conftest import CORPUS, write_config
from sources.conftest import Reply, Request, Web

from syndicator import config as config_mod
from syndicator.render.write import detach_store, etag_of
from syndicator.storage.engine import open_database
from syndicator.storage.leases import POLL, RENDER, Leases
from syndicator.storage.outputs import DbOutputStore
from syndicator.storage.repo import Repository
from syndicator.sync import sync

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NODE = textwrap.dedent(
    """
    import datetime, logging, sys, threading
    from syndicator import config
    from syndicator.cli import setup_logging
    from syndicator.roles import run_web, run_worker, stop_on_signals
    setup_logging(logging.INFO)
    settings = config.load(sys.argv[1])
    stop = threading.Event()
    stop_on_signals(stop)
    if sys.argv[2] == "worker":
        # the digest builder belongs to the digest feature; here it only says who built which day
        run_worker(settings, stop, digest=lambda day: print(f"DIGEST {day}", flush=True),
                   digest_at=datetime.time(0, 0))
    else:
        run_web(settings, stop, "127.0.0.1", int(sys.argv[3]))
    """
)
WARMUP = 8.0  # seconds after the workers are up before the schedule is held to every slot
SKIP_LINE = re.compile(r"(\S+): (\d+) slot\(s\) skipped after slot=(\S+)")
POLL_LINE = re.compile(r"(\S+): poll slot=(\S+) holder=(\S+) attempt=(\d+)")
# a poll logged, then dropped by the stop before its request (the slot stays due)
DROPPED_LINE = re.compile(r"(\S+): poll slot=(\S+) dropped")
LATE = re.compile(r" late=(-?[\d.]+)s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """One real process; its stdout and stderr lines are collected as they come."""

    def __init__(self, config: Path, role: str, port: int = 0) -> None:
        self.role, self.port = role, port
        self.terminated = False
        self.proc = subprocess.Popen([sys.executable, "-c", NODE, str(config), role, str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream,), daemon=True)
                         for stream in (self.proc.stdout, self.proc.stderr)]
        for r in self._readers:
            r.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def polls(self) -> list[tuple[str, str, str, int]]:
        """The polls made (claimed, logged and not dropped by the stop)."""
        lines = list(self.lines)
        dropped = {(m[1], m[2]) for line in lines if (m := DROPPED_LINE.search(line))}
        return [(m[1], m[2], m[3], int(m[4])) for line in lines
                if (m := POLL_LINE.search(line)) and (m[1], m[2]) not in dropped]

    def terminate(self) -> None:
        """One SIGTERM (a second one could land while the interpreter exits, with the default handler back)."""
        if self.proc.poll() is None and not self.terminated:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60) -> int:
        self.terminate()
        code = self.proc.wait(timeout=timeout)
        for r in self._readers:
            r.join(timeout=5)
        return code

    def lateness(self, since: datetime) -> list[float]:
        """Seconds between each claimed slot (from ``since`` on) and its claim, as the worker logged them."""
        return [float(m[1]) for line in list(self.lines)
                if (p := POLL_LINE.search(line)) and datetime.fromisoformat(p[2]) >= since
                and (m := LATE.search(line))]

    def save(self, path: Path) -> None:
        """The node's log, kept in the test's folder for a failure's post-mortem."""
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")


def get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_http(port: int, deadline: float = 120) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if get(port, "/healthz")[0] in (200, 503):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"web node on port {port} never answered")


def posts(n: int, skip: int) -> list[Path]:
    if not (CORPUS / "posts").is_dir():
        pytest.skip("the real corpus (../shared/corpus) is not here")
    return sorted((CORPUS / "posts").glob("*.md"))[skip : skip + n]


def cluster_config(tmp_path: Path, pg_url: str, sources: list[dict[str, object]], **extra: object) -> Path:
    path = write_config(tmp_path, tmp_path, db_url=pg_url)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sources"] = sources
    data.update(extra)
    data["cluster"] = {"lease": "3s"}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def make_folder(tmp_path: Path, name: str, files: list[Path]) -> Path:
    folder = tmp_path / "sources" / name
    folder.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, folder / f.name)
    return folder


def reference(tmp_path: Path, sources: list[dict[str, object]], **extra: object) -> set[tuple[str, str, str]]:
    """What one process syncing the same folders into SQLite stores: (source, article id, story id)."""
    (tmp_path / "ref").mkdir(exist_ok=True)
    path = write_config(tmp_path / "ref", tmp_path, db_url=f"sqlite:///{tmp_path / 'ref' / 'ref.db'}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sources"] = sources
    data.update(extra)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    settings = config_mod.load(path)
    repo = Repository(open_database(settings.database.url))
    sync(settings, repo, render=False)
    return {(str(r["source"]), str(r["id"]), str(r["story_id"])) for r in repo.iter_articles()}


def grouping(rows: list[tuple[str, str, str]] | set[tuple[str, str, str]]) -> set[frozenset[str]]:
    """Which articles are one story (the story's id depends on which desk stored it first; the grouping not)."""
    stories: dict[str, set[str]] = {}
    for _, article, story in rows:
        stories.setdefault(story, set()).add(article)
    return {frozenset(a) for a in stories.values()}


def stored_articles(pg_url: str) -> list[tuple[str, str, str]]:
    repo = Repository(open_database(pg_url))
    rows = [(str(r["source"]), str(r["id"]), str(r["story_id"])) for r in repo.iter_articles()]
    repo.engine.dispose()
    return rows


def assert_consistent(pg_url: str) -> None:
    """No lease held or stuck, no render left to do, every story's member count matches its live articles."""
    engine = open_database(pg_url)
    leases = Leases(engine, "check:0")
    assert all(r.holder is None or (r.expires_at and r.expires_at < leases.now()) for r in leases.rows())
    assert not [r.key for r in leases.rows(RENDER) if r.due_at is not None], "renders left undone"
    from sqlalchemy import text

    with engine.connect() as conn:
        bad = conn.execute(text(
            "SELECT s.id FROM stories s LEFT JOIN articles a ON a.story_id = s.id AND a.withdrawn_at IS NULL "
            "GROUP BY s.id, s.member_count HAVING count(a.id) <> s.member_count"
        )).all()
        assert not bad, f"stories whose member_count is wrong: {bad[:5]}"
    engine.dispose()


class Desks:
    """The partner feeds: one RSS document per desk on a real local server (ETag, 304), growing on demand."""

    def __init__(self, web: Web, count: int, delay: float = 0.0) -> None:
        self.web = web
        self.delay = delay  # seconds each answer takes: overlapping polls of one desk would show
        self.active = dict.fromkeys(range(count), 0)
        self.most_at_once = dict.fromkeys(range(count), 0)
        self.lock = threading.Lock()
        self.items: dict[int, list[tuple[str, str, str]]] = {i: [] for i in range(count)}
        for i in range(count):
            for n in range(2):
                self.add(i, f"desk{i:02d}-{n}")
            web.route(self.path(i), lambda req, i=i: self.reply(i, req))

    @staticmethod
    def path(i: int) -> str:
        return f"/desk{i:02d}.xml"

    def add(self, i: int, story: str) -> None:
        """A news item; the same ``story`` on two desks is the same article link (one story)."""
        n = len(self.items[i])
        text = f"{story}：重庆市应急管理局通报第{n + 1}条消息，安全生产检查覆盖{len(story) * 7}家企业，复工复产有序推进。"
        self.items[i].append((story, f"https://news.example.cn/{story}.html", text))

    def document(self, i: int) -> bytes:
        entries = "".join(
            f"<item><title>{story} 安全生产通报</title><link>{link}</link><guid>{link}</guid>"
            f"<pubDate>Mon, 25 Feb 2019 0{k % 10}:{k % 60:02d}:00 +0800</pubDate><description>{text}</description></item>"
            for k, (story, link, text) in enumerate(self.items[i])
        )
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>desk {i}</title>'
                f"<link>https://news.example.cn/</link><description>d</description>{entries}</channel></rss>").encode()

    def reply(self, i: int, req: Request) -> Reply:
        with self.lock:
            self.active[i] += 1
            self.most_at_once[i] = max(self.most_at_once[i], self.active[i])
        try:
            time.sleep(self.delay)
            return self._reply(i, req)
        finally:
            with self.lock:
                self.active[i] -= 1

    def _reply(self, i: int, req: Request) -> Reply:
        data = self.document(i)
        etag = f'"{etag_of(data)[1:17]}"'
        if req.headers.get("If-None-Match") == etag:
            return Reply(304, {"ETag": etag}, b"")
        return Reply(200, {"Content-Type": "application/rss+xml; charset=utf-8", "ETag": etag}, data)

    def requests(self, i: int) -> int:
        return len(self.web.requests(self.path(i)))


@pytest.fixture
def feed_server() -> Iterator[Web]:
    """A real HTTP server on 127.0.0.1 that counts every request per path."""
    w = Web()
    w.thread.start()
    yield w
    w.server.shutdown()
    w.server.server_close()


def test_workers_and_web_nodes_share_one_database(tmp_path: Path, pg_url: str, feed_server: Web) -> None:
    n_sources, every, run_for = 30, 2.0, 60.0
    web = feed_server
    desks = Desks(web, n_sources)
    sources = [
        {"name": f"desk{i:02d}", "type": "feed", "url": web.url(desks.path(i)), "timezone": "Asia/Shanghai",
         "every": "2s"}
        for i in range(n_sources)
    ]
    # 30 partners on one local host: no per-host pause between their requests (each is a different desk)
    config = cluster_config(tmp_path, pg_url, sources, allow_private_networks=True, http={"min_interval": "0s"})
    # the desks' first items are already stored (one `syndicator sync`); the cluster takes over from there
    repo = Repository(open_database(pg_url))
    sync(config_mod.load(config), repo)
    detach_store(config_mod.load(config).output.dir)
    repo.engine.dispose()
    # counted before any worker starts: every request after this is a worker's poll
    before = {i: desks.requests(i) for i in range(n_sources)}
    ports = [free_port(), free_port()]
    workers = [Node(config, "worker") for _ in range(3)]
    webs = [Node(config, "web", port) for port in ports]
    try:
        for port in ports:
            wait_http(port)
        ready = time.monotonic() + 120
        while not all(any(": polling " in line for line in w.lines) for w in workers):
            assert time.monotonic() < ready, "the workers never started"
            time.sleep(0.1)
        started, started_at = time.monotonic(), datetime.now(UTC)
        added = False
        seen_by_web = 0
        while time.monotonic() - started < run_for:
            time.sleep(1)
            if not added and time.monotonic() - started > run_for / 3:
                # news arrives while everything runs: 10 new items, and one story carried by two desks
                for i in range(10):
                    desks.add(i, f"desk{i:02d}-late")
                desks.add(20, "wire-shared")
                desks.add(21, "wire-shared")
                added = True
            for port in ports:
                if get(port, "/all.atom")[0] == 200:
                    seen_by_web += 1
            assert all(w.proc.poll() is None for w in workers + webs), "a node died"
        time.sleep(2 * every)  # the last renders of the last news
        stopped_at = datetime.now(UTC)
    finally:
        for n in workers + webs:
            n.terminate()
        codes = [n.stop() for n in workers + webs]
        for k, n in enumerate(workers + webs):
            n.save(tmp_path / f"{n.role}-{k}.log")
    assert codes == [0] * 5, (codes, [n.lines[-3:] for n in workers + webs])
    assert seen_by_web > 0

    # every source polled in every slot, never by two workers in the same slot
    polls = [p for w in workers for p in w.polls()]
    assert polls and all(attempt == 1 for *_, attempt in polls)
    per_source: dict[str, list[datetime]] = {}
    for name, slot, _holder, _ in polls:
        per_source.setdefault(name, []).append(datetime.fromisoformat(slot))
    assert sorted(per_source) == [s["name"] for s in sources]
    # each logged poll is one request the desk's server answered: none polled without being counted
    for i in range(n_sources):
        logged = len(per_source[f"desk{i:02d}"])
        assert desks.requests(i) - before[i] == logged, f"desk{i:02d}: requests ≠ polls"
    # after the warm-up every slot of every source, to the last slot before the stop, was polled exactly once:
    # consecutive polled slots are one interval apart, none skipped, none twice
    step = timedelta(seconds=every)
    window_start = started_at + timedelta(seconds=WARMUP)
    skips = [line for w in workers for line in w.lines
             if (m := SKIP_LINE.search(line)) and datetime.fromisoformat(m[3]) + step >= window_start]
    polled_in_window = expected_in_window = 0
    missed = []
    for name, slots in per_source.items():
        assert len(slots) == len(set(slots)), f"{name}: a slot polled twice"
        assert min(slots) < window_start, f"{name}: first polled late"
        assert max(slots) >= stopped_at - 3 * step, f"{name}: not polled any more at the end"
        grid = sorted(t for t in slots if t >= window_start - step)
        gaps = sorted({round((b - a) / step, 3) for a, b in pairwise(grid)})
        if gaps != [1.0]:
            missed.append(f"{name}: slots not polled after the warm-up (gaps of {gaps} intervals)")
        polled_in_window += sum(1 for t in slots if window_start <= t <= stopped_at - step)
        first = min(t for t in grid if t >= window_start)
        expected_in_window += sum(1 for k in range(100) if first + k * step <= stopped_at - step)
    late = sorted(x for w in workers for x in w.lateness(window_start))
    print(f"slots polled after the warm-up: {polled_in_window}/{expected_in_window} "
          f"= {polled_in_window / expected_in_window:.1%}; skipped slots logged: {len(skips)}; "
          f"claim after the slot: median {late[len(late) // 2] * 1000:.0f} ms, "
          f"p99 {late[int(len(late) * 0.99)] * 1000:.0f} ms, max {late[-1] * 1000:.0f} ms")
    assert not missed, missed
    assert not skips, skips[:5]
    assert polled_in_window == expected_in_window
    assert len({holder for _, _, holder, _ in polls}) == 3, "the work was not spread over the workers"

    # each day's digest: built once although three workers ran (two days when the run crosses midnight in the
    # site's timezone, as a suite running through 16:00 UTC does)
    digests = [line for w in workers for line in w.lines if line.startswith("DIGEST ")]
    assert 1 <= len(digests) <= 2 and len(digests) == len(set(digests)), digests

    # no duplicate articles or stories: the same rows as one process syncing the same folders
    stored = stored_articles(pg_url)
    assert len(stored) == len(set(stored))
    expected_rows = reference(tmp_path, sources, allow_private_networks=True, http={"min_interval": "0s"})
    assert len(expected_rows) == 2 * n_sources + 12
    assert {r[:2] for r in stored} == {r[:2] for r in expected_rows}
    assert grouping(stored) == grouping(expected_rows)
    carried = [story for source, _, story in stored if source in ("desk20", "desk21")]
    assert len(carried) > len(set(carried)), "the post carried by two desks is not one story"
    assert_consistent(pg_url)

    # both web nodes return the same bytes and ETag for every output, the bytes the workers stored
    engine = open_database(pg_url)
    store = DbOutputStore(engine)
    webs2 = [Node(config, "web", port) for port in ports]  # fresh nodes: nothing cached, all from the database
    try:
        for port in ports:
            wait_http(port)
        etags = store.all_etags()
        assert "all.atom" in etags and any(p.startswith("tags/") for p in etags)
        for rel, etag in sorted(etags.items()):
            answers = [get(port, f"/{rel}") for port in ports]
            if rel.startswith(".syndicator/"):  # the settings of the last full render: internal, never served
                assert [a[0] for a in answers] == [404, 404], rel
                continue
            assert [a[0] for a in answers] == [200, 200], rel
            assert answers[0][1]["etag"] == answers[1][1]["etag"] == etag == etag_of(answers[0][2]), rel
            assert answers[0][1]["last-modified"] == answers[1][1]["last-modified"], rel
            assert answers[0][2] == answers[1][2], rel
    finally:
        assert [n.stop() for n in webs2] == [0, 0]
        engine.dispose()


def test_killed_worker_is_taken_over_without_loss_or_duplicates(tmp_path: Path, pg_url: str) -> None:
    big = posts(400, 0)
    small = posts(20, 400)
    sources = [{"name": "wire", "type": "archive", "timezone": "Asia/Shanghai", "every": "1h",
                "path": str(make_folder(tmp_path, "wire", big))}]
    sources += [
        {"name": f"desk{i}", "type": "archive", "timezone": "Asia/Shanghai", "every": "1h",
         "path": str(make_folder(tmp_path, f"desk{i}", small[2 * i : 2 * i + 2]))}
        for i in range(10)
    ]
    config = cluster_config(tmp_path, pg_url, sources)
    open_database(pg_url).dispose()
    workers = [Node(config, "worker") for _ in range(3)]
    try:
        victim = None
        end = time.monotonic() + 60
        while victim is None and time.monotonic() < end:
            for w in workers:
                if any(name == "wire" for name, *_ in w.polls()):
                    victim = w
            time.sleep(0.05)
        assert victim is not None, "nobody polled the big source"
        os.kill(victim.proc.pid, signal.SIGKILL)  # mid-poll: 400 posts take seconds to read and store
        victim.proc.wait(timeout=10)
        [(_, slot, dead_holder, _)] = [p for p in victim.polls() if p[0] == "wire"]
        survivors = [w for w in workers if w is not victim]
        end = time.monotonic() + 90
        taken = []
        while not taken and time.monotonic() < end:
            taken = [(w, p) for w in survivors for p in w.polls() if p[0] == "wire" and p[3] == 2]
            time.sleep(0.2)
        assert taken, "the killed worker's source was never taken over"
        (_, (_, slot2, holder2, _)) = taken[0]
        assert slot2 == slot and holder2 != dead_holder  # the same slot, redone by another worker
        takeover_logs = [line for w in survivors for line in w.lines if "taking over from" in line]
        assert any(dead_holder in line for line in takeover_logs)
        # let the redo finish and its renders run
        engine = open_database(pg_url)
        leases = Leases(engine, "check:0")
        end = time.monotonic() + 120
        while time.monotonic() < end:
            rows = leases.rows(POLL) + leases.rows(RENDER)
            if all(r.holder is None for r in rows) and not [r for r in leases.rows(RENDER) if r.due_at is not None] \
                    and all(r.done_at is not None for r in leases.rows(POLL)):
                break
            time.sleep(0.5)
        engine.dispose()
    finally:
        codes = [w.stop() for w in workers if w.proc.returncode is None]
    assert codes == [0, 0]
    stored = stored_articles(pg_url)
    assert len(stored) == len(set(stored))
    expected_rows = reference(tmp_path, sources)  # nothing lost, nothing twice
    assert {r[:2] for r in stored} == {r[:2] for r in expected_rows}
    assert grouping(stored) == grouping(expected_rows)
    assert_consistent(pg_url)


def test_shell_sync_beside_workers_polls_and_renders_by_their_claims(
    tmp_path: Path, pg_url: str, feed_server: Web
) -> None:
    """`syndicator sync` from a shell while workers run: no desk polled by two processes at once, no article or
    story twice, every render requested by its batches done once (by a worker or by the shell)."""
    n_sources = 10
    desks = Desks(feed_server, n_sources, delay=0.3)
    sources = [
        {"name": f"desk{i:02d}", "type": "feed", "url": feed_server.url(desks.path(i)), "timezone": "Asia/Shanghai",
         "every": "2s"}
        for i in range(n_sources)
    ]
    extra: dict[str, object] = {"allow_private_networks": True, "http": {"min_interval": "0s"},
                                "digest": {"enabled": False}}
    config = cluster_config(tmp_path, pg_url, sources, **extra)
    open_database(pg_url).dispose()
    workers = [Node(config, "worker") for _ in range(2)]
    try:
        ready = time.monotonic() + 120
        while sum(len(w.polls()) for w in workers) < 2 * n_sources:
            assert time.monotonic() < ready, "the workers never polled"
            time.sleep(0.2)
        for i in range(5):  # news on half the desks, and one story on two of them
            desks.add(i, f"desk{i:02d}-late")
        desks.add(5, "wire-shared")
        desks.add(6, "wire-shared")
        shell = subprocess.run([sys.executable, "-m", "syndicator", "--config", str(config), "sync", "--no-progress"],
                               capture_output=True, text=True, timeout=300)
        assert shell.returncode == 0, shell.stderr
        assert "under its lease" in shell.stderr and "sources=10" in shell.stdout, shell.stdout + shell.stderr
        time.sleep(4)  # the workers' next slots, and the renders left to them
    finally:
        codes = [w.stop() for w in workers]
        for k, w in enumerate(workers):
            w.save(tmp_path / f"worker-{k}.log")
    assert codes == [0, 0], [w.lines[-3:] for w in workers]
    assert all(n == 1 for n in desks.most_at_once.values()), desks.most_at_once
    polls = [p for w in workers for p in w.polls()]
    for name in {p[0] for p in polls}:
        slots = [p[1] for p in polls if p[0] == name]
        assert len(slots) == len(set(slots)), f"{name}: a slot polled twice"
    stored = stored_articles(pg_url)
    assert len(stored) == len(set(stored))
    expected_rows = reference(tmp_path, sources, **extra)
    assert len(expected_rows) == 2 * n_sources + 7
    assert {r[:2] for r in stored} == {r[:2] for r in expected_rows}
    assert grouping(stored) == grouping(expected_rows)
    assert_consistent(pg_url)  # no lease held, no render left due
    by_claim = [line for line in shell.stderr.splitlines() if "polled by claim" in line and ":sync" in line]
    assert len(by_claim) == n_sources, shell.stderr  # every desk polled under its lease by the shell

"""Normalize many raw items in worker processes, in order, with a bounded number of items in flight.

normalize/ is pure, so it can run anywhere: with more than one core and more than a few hundred changed
files, worker processes normalize while the main process stores the previous batch. Items go out in chunks
and come back in the order they went in; at most ``AHEAD`` chunks are in flight, so memory does not
grow with the archive. Workers are forked from a single-threaded command (they start in milliseconds), else
they come from a ``forkserver`` (the service: a fork beside other threads could copy a held lock); they
receive the rules once, at start-up. Asked to stop, the main process sends no more chunks and ends them once
the chunks in flight are done.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.context
import multiprocessing.pool
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from typing import TYPE_CHECKING, TypeVar

from . import forked
from .dedup import Fingerprint, fingerprint
from .errors import ParseError
from .normalize import normalize_item
from .types import Article, RawItem

if TYPE_CHECKING:
    from .config import NormalizeSettings, TagSettings

T = TypeVar("T")
CHUNK = 32  # items per task: large enough to amortize pickling, small enough to keep workers busy


@dataclass(frozen=True, slots=True)
class Start:
    """How the pool's workers start (``method``), when the pool starts (``pool_at``: items seen) and from which
    item on it gets the input (``min_items``): one decision, made once per input (``starting``).

    The first items are normalized in this process, read one by one; an input that ends before ``min_items``
    never uses the pool (a service tick with one changed file pays nothing for it).
    """

    method: str  # multiprocessing start method
    pool_at: int
    min_items: int


# forked workers start in milliseconds with normalize/ loaded: the pool takes over after a few items (each
# item normalized here was one the main process, the slower stage, did on top of storing; the first 200 were
# 0.3 s of a 5.6 s sync of the real corpus on one core while the other idled)
FORKED = Start("fork", pool_at=16, min_items=16)
# a forkserver's workers take ~0.3 s to start: the pool is started halfway through the first 200 items, while
# this process normalizes and stores them; an input that ends before 200 never uses it (and pays ~50 ms for
# its start and stop); earlier, its start slows the first batch
FROM_FORKSERVER = Start("forkserver", pool_at=100, min_items=200)
# chunks in flight (384 items): the workers go on while the main process stores a batch; 24 were measured
# 5 % faster at 10,000 posts but 200 MB bigger at the peak (the results wait in the main process)
AHEAD = 12
# how much lower the workers' scheduling priority is than the main process's (os.nice): with two cores and two
# workers, three processes want the cores while a sync stores, and at equal priority the main process fell
# behind, then stored the results in flight alone on one core (docs/PERFORMANCE.md, ninth round)
WORKER_NICENESS = 10
POLL_SECONDS = 0.1  # how often a wait for a worker looks at the stop flag
# how long a stop waits for the chunks in flight before it terminates the workers (_stop_pool)
STOP_GRACE_SECONDS = 10.0
DRAIN_POLL_SECONDS = 0.01  # how often a terminating pool looks whether its task handler has ended
# the article and its near-duplicate fingerprint (computed here too: over a quarter of a worker's time), or
# the ParseError's reason
Result = tuple[Article | None, str | None, Fingerprint | None]

_rules: tuple[NormalizeSettings, TagSettings, bool] | None = None


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def starting() -> Start:
    """Forked workers while this process runs a single thread (the CLI), else from a forkserver (the service):
    see ``_start_pool``."""
    return FORKED if forked.available() else FROM_FORKSERVER


def normalize_one(raw: RawItem, rules: NormalizeSettings, tags: TagSettings, fingerprints: bool = True) -> Result:
    try:
        article = normalize_item(raw, rules, tags)
    except ParseError as exc:
        return None, exc.reason, None
    return article, None, fingerprint(article.content_text, article.title) if fingerprints else None


def _init(rules: NormalizeSettings, tags: TagSettings, fingerprints: bool) -> None:
    global _rules
    _rules = (rules, tags, fingerprints)
    import syndicator.normalize  # noqa: F401  (now, while the main process is still reading files)
    # stopping is the main process's decision (the service's stop flag): a Ctrl-C sent to the whole
    # process group must not kill workers in the middle of a chunk and break the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a forked worker inherits the parent's handlers: terminate() must end it, not set a copied stop flag
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # the main process is the one the others wait for (it stores every result; in the service it also answers
    # feed readers): when both are runnable, the kernel runs it first and the workers take the rest
    with contextlib.suppress(OSError):  # a sandbox may forbid it: the worker still works at the same priority
        os.nice(WORKER_NICENESS)


def _work(chunk: list[RawItem]) -> list[Result]:
    assert _rules is not None
    return [normalize_one(raw, *_rules) for raw in chunk]


def normalize_all(
    items: Iterable[tuple[T, RawItem]], rules: NormalizeSettings, tags: TagSettings, *, workers: int | None = None,
    stop: Callable[[], bool] | None = None, fingerprints: bool = True,
) -> Iterator[tuple[T, Result]]:
    """``(tag, raw)`` → ``(tag, (article | None, error | None, fingerprint | None))`` in input order.

    ``workers`` defaults to the number of cores; 1 (or a short input) normalizes in this process. ``stop``
    is polled while waiting for a worker: when it says so the iteration ends early, and the workers stop once
    the chunks in flight are done (``_stop_pool``: a fraction of a second; none is sent after the stop).
    """
    it = iter(items)
    n = cpu_count() if workers is None else workers
    if n <= 1:
        for tag, raw in it:
            yield tag, normalize_one(raw, rules, tags, fingerprints)
        return
    pool: multiprocessing.pool.Pool | None = None
    pending: deque[tuple[list[T], AsyncResult[list[Result]]]] = deque()  # chunks in flight, in input order
    try:
        # the first items are normalized here, read one by one (no read-ahead: a file that vanishes meanwhile
        # is reported as such); only a longer input gets the pool, for the rest
        start = starting()
        for i, (tag, raw) in enumerate(itertools.islice(it, start.min_items)):
            if i == start.pool_at:
                pool = _start_pool(n, rules, tags, fingerprints, start)
            yield tag, normalize_one(raw, rules, tags, fingerprints)
        rest = next(it, None)
        if rest is None:
            return
        it = itertools.chain([rest], it)
        if pool is None:
            pool = _start_pool(n, rules, tags, fingerprints, start)
        running = pool

        def fill() -> None:
            while len(pending) < AHEAD:
                chunk = list(itertools.islice(it, CHUNK))
                if not chunk:
                    return
                pending.append(([t for t, _ in chunk], running.apply_async(_work, ([r for _, r in chunk],))))

        while True:
            fill()
            if not pending:
                return
            tags_, result = pending[0]  # in flight until it is ready: a stop meanwhile lets it finish
            while not result.ready():
                if stop is not None and stop():
                    return
                result.wait(POLL_SECONDS)
            pending.popleft()
            yield from zip(tags_, result.get(), strict=True)
    finally:
        if pool is not None:
            _stop_pool(pool, [result for _, result in pending])


def _stop_pool(pool: multiprocessing.pool.Pool, in_flight: list[AsyncResult[list[Result]]]) -> None:
    """End the workers once the chunks in flight are done (none at the end of an input; stopped early — a stop
    request, an error, the caller broke off — at most ``AHEAD``), waiting at most ``STOP_GRACE_SECONDS``.

    Pool.terminate() kills the workers at once, and one killed while it writes a result (a chunk's results
    fill several pipe buffers) leaves the pool's result thread waiting for the rest of that message for ever:
    a stress test of early stops hung within 3,000 of them. The chunks in flight are a fraction of a second of
    work; only a chunk stuck past the grace (a pathological post) gets the workers terminated.
    """
    settled = False
    try:
        settled = _settled(in_flight, STOP_GRACE_SECONDS)
    finally:  # even when a second Ctrl-C breaks off the wait
        if settled:
            pool.close()  # the workers end as at the end of an input
        else:
            pool.terminate()
        pool.join()


def _settled(results: list[AsyncResult[list[Result]]], seconds: float) -> bool:
    """Whether every result is ready within ``seconds``."""
    deadline = time.monotonic() + seconds
    for result in results:
        result.wait(max(0.0, deadline - time.monotonic()))
        if not result.ready():
            return False
    return True


def _start_pool(n: int, rules: NormalizeSettings, tags: TagSettings, fingerprints: bool,
                start: Start | None = None) -> multiprocessing.pool.Pool:
    start = start or starting()
    # fork (one thread, the CLI): workers start in milliseconds with normalize/ loaded; from a forkserver each
    # spent ~0.2 s of CPU importing it while this process stored the first batch. They never touch the database
    # connections they inherit and end with os._exit, which closes nothing of SQLite's.
    ctx: multiprocessing.context.BaseContext = multiprocessing.get_context(start.method)
    if start.method == "forkserver":
        # the service: a fork while other threads hold locks (logging's, a connection pool's) could leave
        # a worker stuck on one; a forkserver's workers start from a clean single-threaded process. Nothing
        # preloaded: the pool starts at once and the workers import normalize/ themselves, while this
        # process keeps polling the stop flag (a preloading forkserver would block here for seconds)
        ctx.set_forkserver_preload([])
    # multiprocessing.Pool rather than ProcessPoolExecutor: it can terminate its workers (Python 3.11)
    return _Pool(n, initializer=_init, initargs=(rules, tags, fingerprints), context=ctx)


class _Pool(multiprocessing.pool.Pool):
    """``multiprocessing.Pool`` whose worker-handler thread sleeps until a worker exits or the pool changes.

    The stock Pool also wakes that thread whenever a result is waiting in its pipe, and it loops (poll every
    worker, wait again) until the result-handler thread has read it, which on a busy main process is most of
    the time: 10 % of this process's samples at 10,000 posts, and the GIL taken from the thread that stores.
    ``ThreadPool`` waits on the change notifier alone the same way; the notifier is what wakes the handler when
    the pool is closed, terminated or runs out of tasks, and a worker's exit wakes it through its sentinel.
    """

    def _get_sentinels(self) -> list[object]:
        return [self._change_notifier._reader]  # type: ignore[attr-defined]

    @staticmethod
    def _help_stuff_finish(inqueue: object, task_handler: threading.Thread, size: int) -> None:
        """Drain the task pipe until the task handler has ended, not only while the pipe holds data.

        terminate() takes the pipe's read lock (the workers are killed next) and the stock Pool drains only
        while something is waiting: a task handler that had checked "still running?" just before and then
        puts a chunk larger than the pipe (32 posts are) writes into a pipe nobody reads, and terminate()
        waits for it for ever. The handler ends soon after terminate() starts: the worker handler sends it
        the end of its queue, and it sends each worker a stop.
        """
        inqueue._rlock.acquire()  # type: ignore[attr-defined]
        reader = inqueue._reader  # type: ignore[attr-defined]
        while task_handler.is_alive():
            if reader.poll(DRAIN_POLL_SECONDS):
                reader.recv_bytes()

"""Worker-process normalization gives exactly what in-process normalization gives, in input order."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.pool
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from conftest import SEED_FILE, another_thread_running

from syndicator import config, parallel
from syndicator.types import RawItem


def _items(n: int) -> list[tuple[int, RawItem]]:
    seed = SEED_FILE.read_bytes()
    when = datetime(2024, 5, 1, tzinfo=UTC)
    items = []
    for i in range(n):
        # every 7th item has no article in it: its error must come back in its place
        data = b"---\ntitle: \n---\n" if i % 7 == 3 else seed.replace("应急".encode(), f"应急{i}".encode(), 1)
        items.append((i, RawItem(source="s", key=f"{i:04d}.md", timezone="Asia/Shanghai", data=data,
                                 path=f"{i:04d}.md", mtime=when)))
    return items


def test_workers_match_in_process_results_in_order() -> None:
    settings = config.Settings()
    items = _items(parallel.FORKED.min_items + 50)
    inline = list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=1))
    pooled = list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=2))
    assert [i for i, _ in pooled] == list(range(len(items)))
    assert pooled == inline
    assert sum(1 for _, (a, err, _fp) in pooled if a is None and err) == sum(1 for i, _ in items if i % 7 == 3)


def test_short_input_stays_in_process() -> None:
    settings = config.Settings()
    got = list(parallel.normalize_all(_items(5), settings.normalize, settings.tags, workers=4))
    assert [i for i, _ in got] == [0, 1, 2, 3, 4] and got[0][1][0] is not None


def test_one_item_past_the_threshold_goes_through_the_pool_in_order() -> None:
    settings = config.Settings()
    items = _items(parallel.FORKED.min_items + 1)
    pooled = list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=2))
    assert [i for i, _ in pooled] == list(range(len(items)))
    assert pooled == list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=1))


_WORK = parallel._work


def _slowed(chunk: list[RawItem]) -> list[parallel.Result]:
    time.sleep(0.1)  # busy when the caller stops: idle workers end at once however the pool is stopped
    return _WORK(chunk)


def test_breaking_off_early_stops_the_workers(monkeypatch) -> None:
    """A caller that stops once the pool has started (the service asked to stop) leaves no worker behind. The
    chunks in flight finish first and the workers end as at the end of an input (exit code 0, not SIGTERM): one
    killed while it wrote a result left the pool's result thread waiting for the rest of that message for ever."""
    monkeypatch.setattr(parallel, "_work", _slowed)  # the forked workers inherit it
    settings = config.Settings()
    got = parallel.normalize_all(_items(parallel.FORKED.min_items + 300), settings.normalize, settings.tags, workers=2)
    first = [i for i, _ in itertools.islice(got, parallel.FORKED.pool_at + 10)]
    assert first == list(range(parallel.FORKED.pool_at + 10))
    workers = multiprocessing.active_children()
    assert workers
    got.close()
    assert not multiprocessing.active_children()
    assert [w.exitcode for w in workers] == [0] * len(workers)


def _stuck(chunk: list[RawItem]) -> list[parallel.Result]:
    time.sleep(60)
    return []


def test_workers_stuck_past_the_grace_are_terminated_even_under_a_sigterm_handler(monkeypatch) -> None:
    """A chunk that does not finish within ``STOP_GRACE_SECONDS`` (a pathological post) does not hold up a stop:
    the workers are terminated then. A forked worker inherits the parent's signal handlers; SIGTERM must still
    end it rather than run a copy of, say, the service's "stop after this file" handler."""
    monkeypatch.setattr(parallel, "STOP_GRACE_SECONDS", 0.3)
    monkeypatch.setattr(parallel, "_work", _stuck)  # the forked workers inherit it
    settings = config.Settings()
    calls: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: calls.append(signum))
    try:
        kinds: list[set[str]] = []

        def stop() -> bool:  # asked while the workers are stuck on their first chunks
            kinds.append(_worker_kinds())
            return True

        got = parallel.normalize_all(_items(parallel.FORKED.min_items + 300), settings.normalize, settings.tags,
                                     workers=2, stop=stop)
        began = time.monotonic()
        assert len(list(got)) == parallel.FORKED.min_items  # the first items, normalized here; then the stop
        assert time.monotonic() - began < 10
        assert kinds[0] == {"ForkProcess"}
        assert not multiprocessing.active_children()
        assert calls == []
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_input_that_ends_before_the_threshold_never_uses_the_pool() -> None:
    settings = config.Settings()
    items = _items(parallel.FORKED.min_items)
    got = list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=2))
    assert got == list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=1))
    assert not multiprocessing.active_children()


def test_a_single_threaded_process_hands_over_to_its_workers_after_a_few_items() -> None:
    """Forked workers start in milliseconds: the main process (the slower stage, it also stores) normalizes
    only the first few items; beside other threads (the service) the forkserver's slow start is waited out."""
    assert parallel.starting() == parallel.FORKED
    assert parallel.FORKED.min_items <= 16 < parallel.FROM_FORKSERVER.pool_at < parallel.FROM_FORKSERVER.min_items
    settings = config.Settings()
    got = parallel.normalize_all(_items(parallel.FORKED.min_items + 100), settings.normalize, settings.tags,
                                 workers=2)
    list(itertools.islice(got, parallel.FORKED.min_items))
    assert not multiprocessing.active_children()  # the first items: in this process, no pool yet
    next(got)
    assert _worker_kinds() == {"ForkProcess"}
    got.close()
    with another_thread_running():
        assert parallel.starting() == parallel.FROM_FORKSERVER


def test_a_pool_started_beside_other_threads_is_used_only_past_its_threshold() -> None:
    """From a forkserver the pool starts halfway through the first items (its workers warm up meanwhile);
    an input that ends before the threshold never uses it, a longer one gets the same results in order."""
    settings = config.Settings()
    with another_thread_running():
        start = parallel.FROM_FORKSERVER
        short = _items(start.min_items - 10)  # long enough for the pool to start, too short to use it
        assert list(parallel.normalize_all(short, settings.normalize, settings.tags, workers=2)) == \
            list(parallel.normalize_all(short, settings.normalize, settings.tags, workers=1))
        assert not multiprocessing.active_children()
        items = _items(start.min_items + 40)
        got = parallel.normalize_all(items, settings.normalize, settings.tags, workers=2)
        first = list(itertools.islice(got, start.pool_at + 1))
        assert _worker_kinds() == {"ForkServerProcess"}  # started halfway, before it is needed
        assert first + list(got) == list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=1))


def test_no_thread_outlives_a_pooled_normalization() -> None:
    """A one-shot command forks its render only while it runs a single thread: the pool's helper threads are
    gone when the iteration ends (or is broken off)."""
    from syndicator import forked

    settings = config.Settings()
    assert forked.available(), "an earlier test left a thread running"
    items = _items(parallel.FORKED.min_items + 40)
    assert len(list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=2))) == len(items)
    assert forked.available(), threading.enumerate()
    got = parallel.normalize_all(items, settings.normalize, settings.tags, workers=2)
    list(itertools.islice(got, parallel.FORKED.min_items + 5))
    got.close()
    assert forked.available(), threading.enumerate()


def _worker_kinds() -> set[str]:
    return {type(p).__name__ for p in multiprocessing.active_children()}


@contextlib.contextmanager
def _started_pool() -> Iterator[multiprocessing.pool.Pool]:
    settings = config.Settings()
    pool = parallel._start_pool(2, settings.normalize, settings.tags, True)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def _kinds_of_a_started_pool() -> set[str]:
    with _started_pool():
        return _worker_kinds()


def test_a_single_threaded_process_forks_its_workers_and_the_service_uses_a_forkserver() -> None:
    """Forked workers start with normalize/ loaded (no import, ~0.2 s of CPU each); while other threads run
    (the service) a fork could copy a held lock, so the workers come from a forkserver."""
    assert _kinds_of_a_started_pool() == {"ForkProcess"}
    with another_thread_running():
        assert _kinds_of_a_started_pool() == {"ForkServerProcess"}


def _worker_priority() -> int:
    with _started_pool() as pool:
        return pool.apply(os.getpriority, (os.PRIO_PROCESS, 0))


def test_workers_run_at_a_lower_priority_than_the_main_process() -> None:
    """The main process stores every result (and in the service answers feed readers): when it and the workers
    both want the cores, it goes first. Forked workers and the service's forkserver workers alike."""
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + parallel.WORKER_NICENESS)
    assert parallel.WORKER_NICENESS > 0
    assert _worker_priority() == expected
    with another_thread_running():
        assert parallel.starting() == parallel.FROM_FORKSERVER
        assert _worker_priority() == expected


def test_terminate_drains_a_task_put_after_the_task_pipe_looked_empty() -> None:
    """The stock Pool's terminate() drains the task pipe only while it holds data, then keeps its read lock: a
    task handler that had already passed its "still running?" check and puts a chunk larger than the pipe then
    writes for ever, and terminate() waits for it (a stop hung 300 s in CI). Ours drains until the task
    handler has ended."""
    inqueue = multiprocessing.get_context("fork").SimpleQueue()
    put_late = threading.Event()

    def late_put() -> None:  # the task handler, between its state check and a chunk of seed-sized posts
        put_late.wait()
        inqueue._writer.send_bytes(b"x" * (1 << 20))  # type: ignore[attr-defined]

    handler = threading.Thread(target=late_put, daemon=True)
    handler.start()
    try:
        threading.Timer(0.2, put_late.set).start()
        parallel._Pool._help_stuff_finish(inqueue, handler, 2)  # type: ignore[attr-defined]
        handler.join(10)
        assert not handler.is_alive(), "the task handler is stuck writing to a pipe nobody reads"
    finally:
        put_late.set()
        while handler.is_alive():  # unblock it whatever happened, so that no thread outlives the test
            if inqueue._reader.poll(0.05):  # type: ignore[attr-defined]
                inqueue._reader.recv_bytes()  # type: ignore[attr-defined]
        inqueue.close()


def test_the_pools_worker_handler_sleeps_while_results_wait(monkeypatch) -> None:
    """The stock Pool's worker handler woke whenever a result waited in its pipe and looped until it was read:
    thousands of rounds for a few hundred items, competing with the main thread. Ours wakes when the pool
    changes (a handful of rounds) and the results are the same."""
    import multiprocessing.pool

    rounds = 0
    real = multiprocessing.pool.Pool._maintain_pool

    def counting(*args):  # type: ignore[no-untyped-def]
        nonlocal rounds
        rounds += 1
        return real(*args)

    monkeypatch.setattr(multiprocessing.pool.Pool, "_maintain_pool", staticmethod(counting))
    settings = config.Settings()
    items = _items(parallel.FORKED.min_items + 12 * parallel.CHUNK)
    got = list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=2))
    assert got == list(parallel.normalize_all(items, settings.normalize, settings.tags, workers=1))
    assert rounds <= 12, rounds

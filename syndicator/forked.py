"""Run one part of a one-shot command's work in a forked copy of this process, on another core.

A full render writes thousands of independent files (a page per story besides the feeds, tag pages and
digests) from one core while the second one idles. A forked copy starts in a few milliseconds with every
module, the settings and the database engine already loaded; a fresh interpreter (``spawn``, the
``forkserver`` of parallel.py) would first spend ~0.5 s importing them again, as much as the work it takes over.

``fork`` copies only the calling thread: a thread holding a lock (logging's, the scheduler's, a
connection pool's) would leave that lock held for ever in the copy. So a part is forked only while this
process runs a single thread (``syndicator sync`` and ``render`` from the CLI); the service, with its
scheduler, watcher and server threads, does the same work in order in its own thread (``available``).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections.abc import Callable

from .errors import RenderError
from .libc import trim_heap

log = logging.getLogger(__name__)


def available() -> bool:
    """Whether a part may be forked now: a POSIX system, and no other thread in this process."""
    return hasattr(os, "fork") and threading.active_count() == 1


class Part:
    """A forked part of the work; ``result()`` waits for it and returns what it returned (a count)."""

    def __init__(self, pid: int, fd: int, what: str) -> None:
        self.pid, self.fd, self.what = pid, fd, what
        self._result: int | None = None

    def result(self) -> int:
        if self._result is not None:
            return self._result
        with os.fdopen(self.fd, "rb") as pipe:
            message = pipe.read().decode("utf-8", "replace").strip()
        _, status = os.waitpid(self.pid, 0)
        # frozen until the copy is gone: the collector walking every object would write to every page and so
        # make this process copy all of them while the copy still shares them (the tree's memory doubled)
        gc.unfreeze()
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not message.isdigit():
            reason = message or (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
            raise RenderError(f"{self.what} failed: {reason}")
        self._result = int(message)
        return self._result

    def abandon(self) -> None:
        """The caller failed itself: wait for the part (its files are its own to finish) and ignore it."""
        try:
            self.result()
        except RenderError as exc:
            log.warning("%s", exc)


class Claims:
    """Numbers 0 … n-1 handed out once each, to this process and its forked copies (made before the fork).

    Work split by claims ends when the last number is taken, whichever process is faster; a fixed split
    would leave one core idle while the other finishes its half (a full render at 100,000 stories: the parent
    was done with its part after 19 s, the copy with the story pages after 43 s).
    """

    def __init__(self, n: int) -> None:
        import multiprocessing

        self._n = n
        self._next = multiprocessing.Value("l", 0)  # shared memory and a lock that survive the fork

    def next(self) -> int | None:
        """The next unclaimed number, or None when all are taken."""
        with self._next.get_lock():
            claimed = int(self._next.value)
            if claimed >= self._n:
                return None
            self._next.value = claimed + 1
        return claimed

    def taken(self) -> int:
        """How many numbers are taken so far, by every process."""
        return min(int(self._next.value), self._n)


def start(work: Callable[[], int], what: str) -> Part:
    """Run ``work`` in a forked copy of this process; ``what`` names it in errors ("article pages").

    The copy reports ``work()``'s count through a pipe and ends with ``os._exit``: no exit handler, no
    buffered output of this process and no temporary file of its own is touched twice.
    """
    if not available():
        raise RuntimeError("forked.start needs a single-threaded process")  # a programming error
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    read_fd, write_fd = os.pipe()
    # the copy shares this process's memory until either writes to it; the copy's garbage collector would
    # write to every object it walks (and so copy every page) unless the objects made so far are frozen
    gc.collect()
    trim_heap()  # a heap that grew while storing and was freed since would be shared, then copied
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's lines run in the copy, which ends with os._exit
        os.close(read_fd)
        code = 1
        try:
            message = str(work())
            code = 0
        except BaseException as exc:  # anything: the parent must learn of it, and this copy must not go on
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, RenderError) else str(exc)
        try:
            os.write(write_fd, message.encode("utf-8", "replace"))
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write_fd)
    return Part(pid, read_fd, what)


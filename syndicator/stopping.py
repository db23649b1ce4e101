"""Ctrl-C in a one-off command: the first asks it to stop at its next safe point, a second stops it at once.

Python's own Ctrl-C raises KeyboardInterrupt wherever the main thread happens to be: inside a database write,
the worker pool's teardown, or a finalizer that can only log it (measured: one Ctrl-C in a few hundred did
nothing at all, and the sync went on). A stop flag is read only where stopping is safe — between files, while
waiting for a worker, before the render — the way ``syndicator run`` stops (service.py). A second Ctrl-C is
the user saying "now": it raises KeyboardInterrupt as Python would, whose path is crash-safe too.

SIGTERM keeps its default (the process ends at once, as a kill does, which the crash tests show loses
nothing): a supervisor that stops a whole process group must not wait for workers it has just killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sync import Rendering

log = logging.getLogger(__name__)

EXIT_STOPPED = 128 + signal.SIGINT  # what a shell reports for a command that Ctrl-C ended: 130


class StopRequest:
    """Whether a stop was asked (call it: a ``sync.StopAsked``), and what that stop waits for now
    (``waits_for``, said in the log line: the current file, or a render that has begun)."""

    def __init__(self) -> None:
        self._asked = threading.Event()
        self.waits_for = "after the current file"

    def __call__(self) -> bool:
        return self._asked.is_set()

    def ask(self) -> None:
        self._asked.set()

    def announcing_render(self, rendering: Rendering | None) -> Rendering:
        """``sync``'s ``rendering`` callback (``rendering`` too, a progress bar's, if any): from the render's
        start a stop waits for it, since a render that has begun writes what the stored batches changed."""

        def render_goes_on(stage: str = "", /) -> None:
            self.waits_for = "once the render that has begun is done"
            if rendering is not None:
                rendering(stage)

        return render_goes_on


@contextlib.contextmanager
def stop_on_ctrl_c() -> Iterator[StopRequest]:
    """While inside: SIGINT sets the yielded request; a second SIGINT raises KeyboardInterrupt. The previous
    handler is put back on the way out.

    Forked copies (the render's) inherit the handler: there the first Ctrl-C, which the terminal sends to
    the whole process group, is left to this process to announce and act on; the copy finishes its files
    unless a second one comes. Nothing changes outside the main thread (where handlers cannot be set), nor
    where SIGINT is ignored: a shell starts background jobs so, and a Ctrl-C meant for the foreground must
    not stop them (Python itself leaves such a SIGINT ignored).
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield request
        return
    owner = os.getpid()

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        if request():
            raise KeyboardInterrupt
        request.ask()
        if os.getpid() == owner:
            log.warning("SIGINT: stopping %s (Ctrl-C again stops at once)", request.waits_for)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)

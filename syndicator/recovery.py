"""Crash recovery of the outputs: a sync that dies between committing and rendering is finished next time.

The database commits a batch before the feeds that show it are written. A process killed in between
(SIGKILL, power cut, OOM) leaves committed stories that no feed shows yet, and the next incremental sync
would see nothing new to render. So every writer of outputs holds a marker file in the output folder,
``.syndicator-pending-<random>``, locked with ``flock`` while it lives and removed once its render is
complete. A marker that can be locked belongs to a dead process: the next sync or render then rewrites
every output (files whose bytes are unchanged are left alone) and removes it. Markers and temporary files
start with a dot, so the server never serves them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from pathlib import Path

from .render.write import TEMP_PREFIX

log = logging.getLogger(__name__)
MARKER_PREFIX = ".syndicator-pending-"


def _is_stale(path: Path) -> bool:
    """True when no live process holds ``path``'s lock (its writer died before finishing)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # finished and removed meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing releases our probe lock
    return True


class PendingRender:
    """The marker of one running writer; ``recovering`` says a dead writer left work behind."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        others = sorted(out_dir.glob(MARKER_PREFIX + "*"))
        self.stale = [p for p in others if _is_stale(p)]
        self.alone = len(self.stale) == len(others)  # no other live writer
        self.path = out_dir / f"{MARKER_PREFIX}{uuid.uuid4().hex}"
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.fsync(self._fd)
        with contextlib.suppress(OSError):
            dfd = os.open(out_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)  # the marker exists on disk before any batch is committed
            finally:
                os.close(dfd)
        if self.stale:
            log.warning("a previous run stopped before its feeds were written: rendering every output")

    @property
    def recovering(self) -> bool:
        return bool(self.stale)

    def __del__(self) -> None:
        # an exception left the run unfinished: release the lock, keep the file, so the next run recovers
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def finish(self) -> None:
        """The render is complete: remove this marker, the dead writers' markers and their temp files."""
        if self.alone and self.stale:
            # no writer was alive when this run began: temporary files older than that are a dead one's
            for tmp in self.out_dir.rglob(TEMP_PREFIX + "*"):
                with contextlib.suppress(OSError):
                    if tmp.lstat().st_mtime < self.started:
                        tmp.unlink()
        for path in [*self.stale, self.path]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def begin(out_dir: Path) -> PendingRender:
    """Call before the first database write of a run that will render; ``finish()`` after its render."""
    return PendingRender(out_dir)

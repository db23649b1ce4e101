"""Watching archive folders (watchdog): the service hears of a new, edited or deleted post at once.

The only module that imports watchdog. Each watched source's folder is observed recursively; an event for a
post file (``archive.post_path``: the walk's own file filter and relative paths) becomes a hint
``(source, relative path)`` for the scheduler, which polls just those paths. Created, closed after writing,
deleted and moved files are hints (both ends of a move); a folder created, deleted or moved becomes a hint
without a path (scan that source in full), since its files may have come or gone without events of their own.
Plain "modified" events are ignored where the platform reports closes (inotify, Linux): the close that ends
the write follows, and polling a file at every write would store half-written versions. Elsewhere (macOS,
BSD, Windows) there are no close events, and "modified" stands in for them.

What the watcher misses (a full inotify queue, a folder on a network filesystem) the source's regular full
poll (``every``) still finds; what changed while the service was stopped, the scan of every watched folder
at start (``service``). A folder that cannot be watched (it does not exist, inotify limits) is logged once
and only polled.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from .sources.archive import post_path

log = logging.getLogger(__name__)
Hint = Callable[[str, str | None], None]  # (source, relative path or None = scan in full)
STOP_WAIT = 5.0  # seconds to wait for the observer thread to end
_FILE_EVENTS = (FileCreatedEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent)
_FOLDER_EVENTS = (DirCreatedEvent, DirDeletedEvent, DirMovedEvent)


def _text(path: bytes | str) -> str:
    return path if isinstance(path, str) else os.fsdecode(path)


class _Handler(FileSystemEventHandler):
    """Turns one source's events into hints."""

    def __init__(self, source: str, root: str, hint: Hint, *, modified: bool = False) -> None:
        self.source = source
        self.roots = {root, os.path.realpath(root)}  # event paths start with the folder as it was given
        self.hint = hint
        self.events = (*_FILE_EVENTS, FileModifiedEvent) if modified else _FILE_EVENTS

    def _rel(self, path: bytes | str) -> str | None:
        text = _text(path)
        for root in self.roots:
            rel = post_path(root, text)
            if rel is not None:
                return rel
        return None

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            if isinstance(event, _FOLDER_EVENTS):
                self.hint(self.source, None)
            elif isinstance(event, self.events):
                for path in (event.src_path, event.dest_path):
                    rel = self._rel(path) if path else None
                    if rel is not None:
                        self.hint(self.source, rel)
        except Exception:  # an error here would end the observer's thread, and with it all watching
            log.exception("%s: watching: cannot handle %s", self.source, event)


class Watcher:
    """The observer thread and the folders it watches; ``stop()`` ends and joins it."""

    def __init__(self, observer: BaseObserver, watched: list[str]) -> None:
        self._observer = observer
        self.watched = watched  # the sources actually watched

    def stop(self) -> None:
        """Stop the observer and wait for its thread (the service calls this before it exits)."""
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(STOP_WAIT)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EMFILE):  # inotify's limits, reported as these
        return (f"{exc.strerror}: the system's inotify limit is reached; raise fs.inotify.max_user_watches "
                "or fs.inotify.max_user_instances")
    return exc.strerror if exc.strerror and exc.errno else str(exc)


def start(folders: Mapping[str, Path], hint: Hint) -> Watcher:
    """Watch each source's folder (source name → folder); a folder that cannot be watched is logged (one
    warning naming the source) and left to the regular polls."""
    observer = Observer()
    closes = type(observer).__name__ == "InotifyObserver"  # the platform reports "closed after writing"
    observer.daemon = True
    observer.start()
    watched: list[str] = []
    for source, folder in folders.items():
        root = str(folder)
        try:
            if not folder.is_dir():
                raise FileNotFoundError(f"archive folder not found: {folder}")
            observer.schedule(_Handler(source, root, hint, modified=not closes), root, recursive=True)
        except OSError as exc:
            log.warning("%s: not watching %s (%s); its changes are picked up by its regular polls", source, folder,
                        _reason(exc), extra={"source": source})
            continue
        watched.append(source)
    if watched:
        log.info("watching %d archive folder(s) for changes: %s", len(watched), ", ".join(watched))
    return Watcher(observer, watched)

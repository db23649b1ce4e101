"""The only I/O in render/: atomic, change-only writes into the output folder, and pruning.

A file is rewritten only when its bytes change (so its mtime — the server's Last-Modified — stays put),
and always atomically: a temporary file in the same folder, fsync, ``os.replace``. A reader (the server, a
web server, rsync) sees the old file or the new one, never a mix.

An output folder can have an :class:`OutputStore` attached (the database, so web nodes on other hosts serve
the same bytes): then every write, removal and prune below that folder goes to the store as well, and with
``files=False`` only to the store. Renderers keep calling the same three functions either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Protocol

from ..errors import RenderError
from ..libc import libc

TEMP_PREFIX = ".syndicator-tmp-"
# A temporary file this old belongs to a writer that died; a younger one may be another process's write.
STALE_TEMP_SECONDS = 600
FILE_MODE = 0o644
# Only files the renderers generate are ever pruned.
GENERATED_SUFFIXES = frozenset({".atom", ".rss", ".html", ".opml", ".json", ".md", ".xml"})


def safe_relpath(relpath: str) -> PurePosixPath:
    """``relpath`` as a relative POSIX path inside the output folder, or RenderError."""
    if not relpath or "\\" in relpath or "\x00" in relpath:
        raise RenderError("not a usable relative path", path=relpath or "(empty)")
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or any(part in ("..", ".") for part in relpath.split("/")) or not pure.parts:
        raise RenderError("path must stay inside the output folder", path=relpath)
    return pure


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem can fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def etag_of(data: bytes) -> str:
    """The strong ETag of an output's bytes (quoted), the same whether served from a file or the database."""
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'


class OutputStore(Protocol):
    """Somewhere besides the output folder that keeps rendered outputs (the database, for web nodes)."""

    def put(self, relpath: str, data: bytes) -> bool:
        """Store the bytes; False when the stored bytes were already these."""
        ...

    def delete(self, relpath: str) -> bool:
        """Remove one output; False when it was not stored."""
        ...

    def paths(self, under: str) -> list[str]:
        """Stored paths (relative to the output folder) below the folder ``under``."""
        ...


_STORES: dict[str, tuple[OutputStore, bool]] = {}


def _store_key(out_dir: Path) -> str:
    return os.path.realpath(out_dir)


def attach_store(out_dir: Path, store: OutputStore, *, files: bool = True) -> None:
    """Send every output written below ``out_dir`` to ``store`` too (with ``files=False``: only there)."""
    _STORES[_store_key(out_dir)] = (store, files)


def detach_store(out_dir: Path) -> None:
    _STORES.pop(_store_key(out_dir), None)


def attached_store(out_dir: Path) -> tuple[OutputStore, bool] | None:
    """The store attached to ``out_dir`` and whether files are written too, or None."""
    return _STORES.get(_store_key(out_dir))


def write_if_changed(out_dir: Path, relpath: str, data: bytes) -> bool:
    """Write ``data`` to ``out_dir/relpath`` atomically; False (file untouched) when the bytes are equal.

    With a store attached the bytes go there too; True when either copy changed. Inside ``batched(out_dir)``
    (same thread) the file is staged in that batch and appears, durable, when the batch commits.
    """
    batch = _batch_of(out_dir)
    if batch is not None:
        return batch.write(relpath, data)
    attached = attached_store(out_dir)
    if attached is None:
        return _write_file(out_dir, relpath, data)
    store, files = attached
    safe_relpath(relpath)
    stored = store.put(relpath, data)
    written = _write_file(out_dir, relpath, data) if files else False
    return stored or written


def remove(out_dir: Path, relpath: str) -> bool:
    """Remove one generated output (file and stored copy); False when there was none."""
    target = out_dir.joinpath(*safe_relpath(relpath).parts)
    removed = False
    attached = attached_store(out_dir)
    if attached is not None:
        removed = attached[0].delete(relpath)
    try:
        target.unlink()
        removed = True
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RenderError(f"cannot remove: {exc}", path=relpath) from exc
    return removed


def _changed_target(out_dir: Path, relpath: str, data: bytes) -> Path | None:
    """The file ``relpath`` stands for, or None when it already holds ``data`` (nothing to write)."""
    target = out_dir.joinpath(*safe_relpath(relpath).parts)
    try:
        if target.read_bytes() == data:
            return None
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise RenderError("a folder is in the way", path=relpath) from None
    except OSError as exc:
        raise RenderError(f"cannot read the current file: {exc}", path=relpath) from exc
    return target


def _write_file(out_dir: Path, relpath: str, data: bytes) -> bool:
    target = _changed_target(out_dir, relpath, data)
    if target is None:
        return False
    tmp_name: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=target.parent)
        except FileNotFoundError:  # a concurrent prune removed the folder it found empty: make it again
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise RenderError(f"cannot write: {exc}", path=relpath) from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    return True


def prune(out_dir: Path, keep: set[str], under: str, *, keep_newer_than: float | None = None) -> list[str]:
    """Remove generated files below ``out_dir/under`` that are not in ``keep``; return what was removed.

    ``keep`` holds paths relative to ``out_dir`` (``"tags/shizheng.atom"``); paths relative to ``under``
    (``"shizheng.atom"``) are accepted too. Only generated file types (``.atom``, ``.rss``, ``.html`` …) and
    leftover temporary files are removed; symlinks are never followed; folders left empty are removed.
    The returned paths are relative to ``out_dir``, POSIX style, sorted.

    Other processes may write here at the same time: a temporary file younger than ``STALE_TEMP_SECONDS``
    is someone's write in progress, and a file modified after ``keep_newer_than`` (when the caller made its
    ``keep`` list) was written by a writer that knew better; both stay.
    """
    now = time.time()
    base = safe_relpath(under)
    root = out_dir.joinpath(*base.parts)
    removed: list[str] = []
    attached = attached_store(out_dir)
    if attached is not None:
        prefix = f"{base.as_posix()}/"
        for rel in attached[0].paths(base.as_posix()):
            inside = rel.removeprefix(prefix)
            if rel in keep or inside in keep or PurePosixPath(rel).suffix not in GENERATED_SUFFIXES:
                continue
            if attached[0].delete(rel):
                removed.append(rel)
    if not root.is_dir() or root.is_symlink():
        return sorted(removed)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        here = Path(dirpath)
        for name in sorted(filenames):
            path = here / name
            rel_inside = path.relative_to(root).as_posix()
            rel = f"{base.as_posix()}/{rel_inside}"
            if rel in keep or rel_inside in keep:
                continue
            if not (name.startswith(TEMP_PREFIX) or path.suffix in GENERATED_SUFFIXES):
                continue
            try:
                mtime = path.lstat().st_mtime
            except FileNotFoundError:
                continue
            if name.startswith(TEMP_PREFIX) and now - mtime < STALE_TEMP_SECONDS:
                continue
            if keep_newer_than is not None and not name.startswith(TEMP_PREFIX) and mtime >= keep_newer_than:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise RenderError(f"cannot remove: {exc}", path=rel) from exc
            if rel not in removed:
                removed.append(rel)
        for name in dirnames:
            sub = here / name
            if not sub.is_symlink():
                with contextlib.suppress(OSError):
                    sub.rmdir()  # only succeeds when empty
    return sorted(removed)


def _sync_filesystem(directory: Path) -> None:
    """Flush every dirty page of the filesystem holding ``directory`` (syncfs(2); sync(2) elsewhere).

    Python has no ``os.syncfs``; ctypes reaches the libc call directly (Linux ≥ 2.6.39). One syncfs costs
    about what one fsync does, so a batch of thousands of files pays it twice instead of twice per file.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            if libc().syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


SMALL_BATCH = 32  # up to this many files a batch is fsynced file by file


class BatchWriter:
    """Change-only, atomic writes of many files, durable with two filesystem syncs per batch.

    ``write`` puts changed bytes into a temporary file beside the target (nothing visible changes yet);
    ``commit`` syncs the filesystem once, renames every temporary file over its target (each reader sees the
    old file or the new one, never a mix, as with ``write_if_changed``) and syncs once more so the renames
    survive a crash. At most ``window`` temporary files wait at a time: memory stays flat however many pages
    a render writes. Use it as a context manager; leaving it with an exception removes the temporary files.
    """

    def __init__(self, out_dir: Path, window: int = 2000) -> None:
        self.out_dir = out_dir
        self.window = window
        self.pending: list[tuple[str, Path]] = []  # (temporary file, target)
        self.written = 0
        self._key = _store_key(out_dir)

    def write(self, relpath: str, data: bytes) -> bool:
        """Stage ``data`` for ``out_dir/relpath`` (and put it in an attached store at once, as
        ``write_if_changed`` does); False when neither copy changed."""
        attached = _STORES.get(self._key)  # = attached_store(self.out_dir), resolved once
        stored = False
        if attached is not None:
            store, files = attached
            stored = store.put(relpath, data)
            if not files:
                self.written += stored
                return stored
        staged = self._stage(relpath, data)
        if stored and not staged:
            self.written += 1  # only the stored copy changed: no rename will count it
        return stored or staged

    def _stage(self, relpath: str, data: bytes) -> bool:
        """Stage ``data`` in a temporary file; False (nothing staged) when the file already has these bytes."""
        target = _changed_target(self.out_dir, relpath, data)
        if target is None:
            return False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=target.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp_name, FILE_MODE)
        except OSError as exc:
            raise RenderError(f"cannot write: {exc}", path=relpath) from exc
        self.pending.append((tmp_name, target))
        if len(self.pending) >= self.window:
            self.commit()
        return True

    def commit(self) -> None:
        """Make every staged file durable and visible.

        A few files (an incremental sync) are fsynced one by one, as ``write_if_changed`` does: a filesystem
        sync would also wait for every other process's dirty pages. Many files: two filesystem syncs.
        """
        if not self.pending:
            return
        small = len(self.pending) <= SMALL_BATCH
        if small:
            for tmp_name, _ in self.pending:
                with open(tmp_name, "rb") as fh:
                    os.fsync(fh.fileno())
        else:
            _sync_filesystem(self.out_dir)
        for tmp_name, target in self.pending:
            try:
                os.replace(tmp_name, target)
            except OSError as exc:
                raise RenderError(f"cannot write: {exc}", path=str(target.relative_to(self.out_dir))) from exc
            self.written += 1
        if small:
            for folder in {target.parent for _, target in self.pending}:
                _fsync_dir(folder)
        else:
            _sync_filesystem(self.out_dir)
        self.pending.clear()

    def discard(self) -> None:
        for tmp_name, _ in self.pending:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        self.pending.clear()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


_BATCHES = threading.local()  # realpath of an output folder → the BatchWriter of this thread's batched()


def _batch_of(out_dir: Path) -> BatchWriter | None:
    active: dict[str, BatchWriter] | None = getattr(_BATCHES, "active", None)
    if not active:
        return None
    # the folder as the batch was opened with it first: resolving symlinks for each of thousands of files
    # cost more than writing some of them
    for writer in active.values():
        if writer.out_dir == out_dir:
            return writer
    return active.get(_store_key(out_dir))


@contextlib.contextmanager
def batched(out_dir: Path, window: int = 2000) -> Iterator[BatchWriter]:
    """Send every ``write_if_changed`` of this thread below ``out_dir`` through one ``BatchWriter``.

    A full render writes thousands of files (feeds of every tag, tag pages, digests, article pages): two
    filesystem syncs per ``window`` files instead of two fsyncs per file. Nested use joins the outer batch.
    Leaving with an exception discards what was staged (the files keep their previous bytes).
    """
    active: dict[str, BatchWriter] = _BATCHES.__dict__.setdefault("active", {})
    key = _store_key(out_dir)
    if key in active:
        yield active[key]
        return
    with BatchWriter(out_dir, window) as writer:
        active[key] = writer
        try:
            yield writer
        finally:
            active.pop(key, None)

"""The only I/O in render/: atomic, change-only writes into the output folder, and pruning.

A file is rewritten only when its bytes change (so its mtime — the server's Last-Modified — stays put),
and always atomically: a temporary file in the same folder, fsync, ``os.replace``. A reader (the server, a
web server, rsync) sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path, PurePosixPath

from ..errors import RenderError

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


def write_if_changed(out_dir: Path, relpath: str, data: bytes) -> bool:
    """Write ``data`` to ``out_dir/relpath`` atomically; False (file untouched) when the bytes are equal."""
    target = out_dir.joinpath(*safe_relpath(relpath).parts)
    try:
        if target.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise RenderError("a folder is in the way", path=relpath) from None
    except OSError as exc:
        raise RenderError(f"cannot read the current file: {exc}", path=relpath) from exc
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
    if not root.is_dir() or root.is_symlink():
        return []
    removed: list[str] = []
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
            removed.append(rel)
        for name in dirnames:
            sub = here / name
            if not sub.is_symlink():
                with contextlib.suppress(OSError):
                    sub.rmdir()  # only succeeds when empty
    return sorted(removed)

"""The C library calls Python has no wrapper for (``syncfs``, ``malloc_trim``), reached through ctypes."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def libc() -> Any:
    """The C library this process already has loaded, looked up once.

    ``CDLL(None)`` opens the running program's own symbol table, which holds libc's: no file search.
    (``ctypes.util.find_library`` runs ``ldconfig -p`` in a child process — a fork of this one, whose pages
    the benchmark then counted twice, twice per 2,000 files.)
    """
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``); nothing elsewhere."""
    try:
        libc().malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass

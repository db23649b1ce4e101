"""Typed errors. Every error names the source, file or key it concerns, so one line tells the operator what broke."""

from __future__ import annotations


class SyndicatorError(Exception):
    """Base of every error syndicator raises on purpose."""


class ConfigError(SyndicatorError):
    """The configuration file is missing, unreadable or invalid (CLI exit code 2)."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = f"{path}: " if path else ""
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{message}")


class SourceError(SyndicatorError):
    """A source could not be read as a whole."""

    def __init__(self, message: str, *, source: str) -> None:
        self.source = source
        super().__init__(f"[{source}] {message}")


class FetchError(SourceError):
    """A network fetch failed (status is the HTTP status, or None for a transport error)."""

    def __init__(self, message: str, *, source: str, status: int | None = None, url: str | None = None) -> None:
        self.status = status
        self.url = url
        super().__init__(message, source=source)


class NotModified(FetchError):
    """The server answered 304: nothing to do."""


class ParseError(SyndicatorError):
    """One file or entry could not become an article; the rest of the source goes on."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, source: str | None = None) -> None:
        self.file = file
        self.line = line
        self.source = source
        where = file or "?"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"[{source}] " if source else ""
        self.reason = message
        super().__init__(f"{prefix}{where}: {message}")


class StorageError(SyndicatorError):
    """The database refused or could not be reached."""


class RenderError(SyndicatorError):
    """An output file could not be built or written."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class Interrupted(SyndicatorError):
    """A stop was asked for (SIGTERM/SIGINT) in the middle of a source; its unsaved batch was dropped."""


class LockHeld(StorageError):
    """Another process holds a lock this one needs (the service lock, or the writer's turn)."""

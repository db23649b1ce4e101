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
class BlockedAddress(FetchError):
    """The URL's scheme or address is not allowed (private network guard, non-http scheme)."""


class Gone(FetchError):
    """The server answered 410 Gone: the source is disabled with this reason."""


class RetryLater(FetchError):
    """429/503: the server asked to wait ``retry_after`` seconds (already capped) before the next poll."""

    def __init__(self, message: str, *, source: str, status: int | None = None, url: str | None = None,
                 retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, source=source, status=status, url=url)


class TooLarge(FetchError):
    """The response passed the size cap (counted on decompressed bytes)."""


class Timeout(FetchError):
    """The connect or total deadline passed."""


class NotAFeed(FetchError):
    """The document is an error page or HTML where a feed was expected, or no parser could read it."""


class EmailError(SyndicatorError):
    """The digest e-mail could not be delivered (the day stays unsent, so a later run retries)."""

    def __init__(self, message: str, *, server: str) -> None:
        self.server = server
        super().__init__(f"{server}: {message}")

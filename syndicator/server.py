"""HTTP serving of the output folder: a small WSGI app, run by waitress.

- correct media types for feeds (``.atom``, ``.rss``, ``.opml`` …), ``/`` → ``index.html``;
- a strong ``ETag`` (hash of the bytes; ``-gz`` suffix for the gzip variant), ``Last-Modified`` from the
  mtime, ``304`` on ``If-None-Match`` (weak comparison, lists, ``*``) or, without it, ``If-Modified-Since``;
- ``GET`` and ``HEAD`` only (``405`` otherwise), gzip when ``Accept-Encoding`` allows it;
- no path traversal: ``..`` segments (also percent-encoded), dot files, absolute paths and symlinks that
  leave the folder all answer ``404``;
- each file is read whole into memory before anything is sent, so a reader never gets a half-replaced file
  (the renderers replace files atomically); reads are cached by (path, inode, mtime_ns, size).

``extra_routes`` maps exact paths (``/healthz``, ``/metrics``) to WSGI apps; they are tried first.

The response logic (validators, 304, gzip, HEAD, 404/405) lives in :class:`OutputApp`; where the bytes come
from is a subclass's ``lookup``: :class:`StaticApp` reads the output folder, :class:`StoredApp` reads the
outputs a worker stored in the database (web nodes of a scale-out deployment), cached in memory by ETag.
"""

from __future__ import annotations

import gzip
import mimetypes
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from .errors import SyndicatorError
from .render.write import etag_of

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

CACHE_CONTROL = "public, max-age=60"
ALLOWED_METHODS = ("GET", "HEAD")
INDEX_FILE = "index.html"
GZIP_MIN_BYTES = 256
CACHE_MAX_BYTES = 64 * 1024 * 1024
CACHE_MAX_FILE = 8 * 1024 * 1024

CONTENT_TYPES: dict[str, str] = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".xsl": "application/xslt+xml; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
COMPRESSIBLE_PREFIXES = (
    "text/",
    "application/atom+xml",
    "application/rss+xml",
    "application/json",
    "application/xml",
    "application/xslt+xml",
    "image/svg+xml",
)


def content_type_for(name: str) -> str:
    """The Content-Type header for a file name."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def _compressible(content_type: str) -> bool:
    return content_type.startswith(COMPRESSIBLE_PREFIXES)


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file as read from disk, with its validators (and its gzip variant, made on demand)."""

    data: bytes
    etag: str  # strong, quoted
    last_modified: str  # IMF-fixdate
    mtime: float
    content_type: str


@dataclass(slots=True)
class _Cached:
    key: object  # files: (device, inode, mtime_ns, size); stored outputs: the ETag
    file: StaticFile
    gz: bytes | None = None


class FileCache:
    """A small LRU of file contents keyed by path, valid while (dev, inode, mtime_ns, size) match."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, _Cached] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str, key: object) -> _Cached | None:
        with self._lock:
            item = self._items.get(path)
            if item is None or item.key != key:
                return None
            self._items.move_to_end(path)
            return item

    def put(self, path: str, item: _Cached) -> None:
        size = len(item.file.data) + len(item.gz or b"")
        if size > CACHE_MAX_FILE:
            return
        with self._lock:
            old = self._items.pop(path, None)
            if old is not None:
                self._bytes -= len(old.file.data) + len(old.gz or b"")
            self._items[path] = item
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.file.data) + len(dropped.gz or b"")


def _strip_weak(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith(("W/", "w/")) else tag


def etag_matches(header: str, etags: Iterable[str]) -> str | None:
    """The current ETag matched by an If-None-Match header (weak comparison), else None."""
    candidates = list(etags)
    header = header.strip()
    if header == "*":
        return candidates[0] if candidates else None
    wanted = {_strip_weak(part) for part in header.split(",") if part.strip()}
    for tag in candidates:
        if _strip_weak(tag) in wanted:
            return tag
    return None


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (honouring ``q=0`` and ``*``)."""
    gzip_q: float | None = None
    star_q: float | None = None
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            gzip_q = q
        elif coding == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return star_q is not None and star_q > 0


def _not_modified_since(header: str, mtime: float) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        return False
    return int(mtime) <= since.timestamp()


NOT_FOUND_PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>404 Not Found</title></head>\n'
    "<body><h1>404 Not Found</h1><p>No such file: <code>{path}</code>. "
    'See <a href="/">the list of feeds</a>.</p></body>\n</html>\n'
)


class OutputApp:
    """The response logic shared by every backend; a subclass says where a path's bytes come from."""

    def __init__(
        self,
        extra_routes: Mapping[str, WSGIApp] | None = None,
        *,
        cache_control: str = CACHE_CONTROL,
        cache_max_bytes: int = CACHE_MAX_BYTES,
    ) -> None:
        self.extra_routes: dict[str, WSGIApp] = dict(extra_routes or {})
        self.cache_control = cache_control
        self.cache = FileCache(cache_max_bytes)

    def add_route(self, path: str, app: WSGIApp) -> None:
        """Serve ``path`` (exact, e.g. ``/healthz``) with another WSGI app."""
        self.extra_routes[path] = app

    # -- request handling ------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raw_path = environ.get("PATH_INFO") or "/"
        route = self.extra_routes.get(raw_path)
        if route is not None:
            return route(environ, start_response)
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if method not in ALLOWED_METHODS:
            return self._simple(
                start_response,
                "405 Method Not Allowed",
                b"method not allowed\n",
                [("Allow", ", ".join(ALLOWED_METHODS))],
                method,
            )
        try:
            path, found = self.lookup(raw_path)
        except SyndicatorError as exc:  # the backend is unreachable and nothing is cached
            body = f"temporarily unavailable: {exc}\n".encode()
            return self._simple(start_response, "503 Service Unavailable", body, [("Retry-After", "5")], method)
        if found is None:
            return self._not_found(start_response, raw_path, method)
        return self._send(environ, start_response, method, path, found)

    def lookup(self, raw_path: str) -> tuple[str, _Cached | None]:
        """(cache path, cached item or None) for a URL path; raises SyndicatorError when the backend fails."""
        raise NotImplementedError


    def _send(
        self, environ: Environ, start_response: StartResponse, method: str, path: str, item: _Cached
    ) -> Iterable[bytes]:
        f = item.file
        compressible = _compressible(f.content_type) and len(f.data) >= GZIP_MIN_BYTES
        use_gzip = compressible and accepts_gzip(str(environ.get("HTTP_ACCEPT_ENCODING", "")))
        gz_etag = f.etag[:-1] + '-gz"'
        etag = gz_etag if use_gzip else f.etag
        headers: list[tuple[str, str]] = [
            ("Cache-Control", self.cache_control),
            ("Last-Modified", f.last_modified),
        ]
        if compressible:
            headers.append(("Vary", "Accept-Encoding"))
        inm = environ.get("HTTP_IF_NONE_MATCH")
        not_modified = False
        if inm is not None:
            # a client holding either variant holds the current bytes
            matched = etag_matches(str(inm), [etag, f.etag, gz_etag])
            if matched is not None:
                not_modified, etag = True, matched
        else:
            ims = environ.get("HTTP_IF_MODIFIED_SINCE")
            not_modified = ims is not None and _not_modified_since(str(ims), f.mtime)
        headers.append(("ETag", etag))
        if not_modified:
            start_response("304 Not Modified", headers)
            return []
        body = f.data
        if use_gzip:
            if item.gz is None:
                item.gz = gzip.compress(f.data, compresslevel=6, mtime=0)
                self.cache.put(path, item)
            body = item.gz
            headers.append(("Content-Encoding", "gzip"))
        headers += [
            ("Content-Type", f.content_type),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
        ]
        start_response("200 OK", headers)
        return [] if method == "HEAD" else [body]

    def _not_found(self, start_response: StartResponse, raw_path: str, method: str) -> Iterable[bytes]:
        try:
            shown = raw_path.encode("latin-1").decode("utf-8", "replace")
        except UnicodeEncodeError:
            shown = raw_path
        page = NOT_FOUND_PAGE.format(path=escape(shown)).encode("utf-8")
        return self._simple(start_response, "404 Not Found", page, [], method, "text/html; charset=utf-8")

    @staticmethod
    def _simple(
        start_response: StartResponse,
        status: str,
        body: bytes,
        extra: list[tuple[str, str]],
        method: str,
        content_type: str = "text/plain; charset=utf-8",
    ) -> Iterable[bytes]:
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            *extra,
        ]
        start_response(status, headers)
        return [] if method == "HEAD" else [body]


class StaticApp(OutputApp):
    """The WSGI app serving ``output_dir`` (see the module docstring)."""

    def __init__(
        self,
        output_dir: Path,
        extra_routes: Mapping[str, WSGIApp] | None = None,
        *,
        cache_control: str = CACHE_CONTROL,
        cache_max_bytes: int = CACHE_MAX_BYTES,
    ) -> None:
        self.output_dir = Path(output_dir)
        super().__init__(extra_routes, cache_control=cache_control, cache_max_bytes=cache_max_bytes)

    def lookup(self, raw_path: str) -> tuple[str, _Cached | None]:
        path = self.resolve(raw_path)
        return path or "", (self._load(path) if path is not None else None)

    def resolve(self, raw_path: str) -> str | None:
        """The real path of the file a URL path names inside the output folder, or None."""
        parts = url_parts(raw_path)
        if parts is None:
            return None
        root = os.path.realpath(self.output_dir)
        candidate = os.path.join(root, *parts) if parts else root
        if raw_path.endswith("/") or not parts:
            candidate = os.path.join(candidate, INDEX_FILE)
        real = os.path.realpath(candidate)
        if os.path.commonpath([root, real]) != root or real == root:
            return None  # a symlink that leaves the folder
        return real

    def _load(self, path: str) -> _Cached | None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                return self._load(os.path.join(path, INDEX_FILE))
            return None
        key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self.cache.get(path, key)
        if cached is not None:
            return cached
        try:
            with open(path, "rb") as fh:
                fst = os.fstat(fh.fileno())  # the validators of exactly the bytes read
                data = fh.read()
        except OSError:
            return None
        key = (fst.st_dev, fst.st_ino, fst.st_mtime_ns, fst.st_size)
        item = _Cached(
            key=key,
            file=StaticFile(
                data=data,
                etag=etag_of(data),
                last_modified=formatdate(fst.st_mtime, usegmt=True),
                mtime=fst.st_mtime,
                content_type=content_type_for(path),
            ),
        )
        self.cache.put(path, item)
        return item


def url_parts(raw_path: str) -> list[str] | None:
    """The path segments of a URL path inside the outputs, or None when it may not be served.

    ``..``, ``.`` and dot files (such as the writers' temporary files), NUL, backslashes and paths that are
    not valid UTF-8 are refused.
    """
    try:
        text = raw_path.encode("latin-1").decode("utf-8")  # PEP 3333: PATH_INFO bytes as latin-1
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    if "\x00" in text or "\\" in text or not text.startswith("/"):
        return None
    parts = [p for p in text.split("/") if p]
    if any(p.startswith(".") for p in parts):
        return None
    return parts


class OutputSource(Protocol):
    """Stored outputs as a web node reads them (``storage.outputs.DbOutputStore``)."""

    def head(self, relpath: str) -> tuple[str, Any] | None: ...  # (ETag, updated datetime)

    def get(self, relpath: str) -> Any: ...  # object with data, etag, updated — or None


class StoredApp(OutputApp):
    """Serves outputs stored in the database: a web node that needs no shared disk.

    Every request asks the database for the output's current ETag (a primary-key lookup); the bytes come
    from an in-memory cache keyed by that ETag and are fetched only when it changed. When the database is
    unreachable, a cached copy is served as is (a web node rides out a database restart); without one: 503.
    """

    def __init__(
        self,
        source: OutputSource,
        extra_routes: Mapping[str, WSGIApp] | None = None,
        *,
        cache_control: str = CACHE_CONTROL,
        cache_max_bytes: int = CACHE_MAX_BYTES,
    ) -> None:
        self.source = source
        self._last: dict[str, _Cached] = {}  # newest item per path, for database outages
        self._last_lock = threading.Lock()
        super().__init__(extra_routes, cache_control=cache_control, cache_max_bytes=cache_max_bytes)

    def lookup(self, raw_path: str) -> tuple[str, _Cached | None]:
        parts = url_parts(raw_path)
        if parts is None:
            return "", None
        rel = "/".join(parts)
        candidates = [rel, f"{rel}/{INDEX_FILE}"] if rel and not raw_path.endswith("/") else [
            f"{rel}/{INDEX_FILE}" if rel else INDEX_FILE
        ]
        for candidate in candidates:
            found = self._find(candidate)
            if found is not None:
                return candidate, found
        return rel, None

    def _find(self, rel: str) -> _Cached | None:
        try:
            head = self.source.head(rel)
            if head is None:
                return None
            etag, _updated = head
            cached = self.cache.get(rel, etag)
            if cached is not None:
                return cached
            stored = self.source.get(rel)
        except SyndicatorError:
            with self._last_lock:
                stale = self._last.get(rel)
            if stale is None:
                raise
            return stale
        if stored is None:
            return None
        updated = stored.updated.timestamp()
        item = _Cached(
            key=stored.etag,
            file=StaticFile(
                data=stored.data,
                etag=stored.etag,
                last_modified=formatdate(updated, usegmt=True),
                mtime=updated,
                content_type=content_type_for(rel),
            ),
        )
        self.cache.put(rel, item)
        with self._last_lock:
            self._last[rel] = item
        return item


def make_app(output_dir: Path, extra_routes: Mapping[str, WSGIApp] | None = None) -> StaticApp:
    """The WSGI app serving ``output_dir``; ``extra_routes`` adds exact paths such as ``/healthz``."""
    return StaticApp(output_dir, extra_routes)


def create_server(
    output_dir: Path,
    host: str,
    port: int,
    extra_routes: Mapping[str, WSGIApp] | None = None,
    *,
    threads: int = 4,
) -> Any:
    """A bound (not yet running) waitress server; ``.run()`` serves, ``.close()`` stops listening.

    ``server.effective_port`` is the bound port (useful with ``port=0``).
    """
    import waitress

    return waitress.create_server(
        make_app(output_dir, extra_routes), host=host, port=port, threads=threads, ident="syndicator"
    )


def create_app_server(app: WSGIApp, host: str, port: int, *, threads: int = 4) -> Any:
    """A bound waitress server for any WSGI app (a web node's :class:`StoredApp`)."""
    import waitress

    return waitress.create_server(app, host=host, port=port, threads=threads, ident="syndicator")


def stop_server(server: Any) -> None:
    """Stop a server of ``create_server``/``create_app_server`` that runs on another thread: its socket is
    closed inside the server's own loop thread, and its request threads end too (waitress ends them only when
    its loop is interrupted, so a role run on a thread of a longer-lived process left them running)."""
    server.trigger.pull_trigger(server.close)
    server.task_dispatcher.shutdown()


def serve(output_dir: Path, host: str, port: int) -> None:
    """Serve ``output_dir`` with waitress until interrupted (blocks; prints nothing itself)."""
    server = create_server(output_dir, host, port)
    try:
        server.run()
    finally:
        server.close()

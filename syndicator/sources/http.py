"""The only module that talks to the network (requests): one polite, bounded, guarded GET → FetchResult.

Why each rule exists:
- a total deadline (not just per-read timeouts): a server dripping one byte a second never trips a read
  timeout, so a watchdog shuts the sockets down when the deadline passes;
- a size cap counted on *decompressed* bytes, read in chunks, so a gzip bomb is stopped early;
- redirects followed by hand (at most ``max_redirects``), so every hop is checked by the network guard and
  credentials, cookies and custom headers never leave the configured host;
- the network guard resolves the host itself, refuses private/loopback/link-local/multicast/reserved
  addresses, connects to the checked address and checks the connected peer again (no DNS rebinding);
- conditional GET (ETag / Last-Modified) so an unchanged feed costs one small 304.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .. import clock
from ..config import HttpSettings, SourceSettings, parse_duration
from ..errors import BlockedAddress, FetchError, Gone, RetryLater, Timeout, TooLarge

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
PERMANENT = (301, 308)
T = TypeVar("T")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def pick(mine: T | None, default: T) -> T:
    """A source's own setting, else the ``http:`` default."""
    return default if mine is None else mine


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """Everything one GET needs, resolved from a source and the ``http:`` defaults."""

    source: str
    user_agent: str
    headers: tuple[tuple[str, str], ...] = ()
    cookies: tuple[tuple[str, str], ...] = ()
    auth: tuple[str, str] | None = None
    connect_timeout: float = 10.0
    timeout: float = 30.0
    verify: bool | str = True
    allow_private_networks: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    max_retry_after: float = 86400.0
    min_interval: float = 0.0
    max_connections: int = 2

    @classmethod
    def for_source(cls, src: SourceSettings, http: HttpSettings, *, allow_private_networks: bool = False) -> FetchOptions:
        """Merge the source's options over the ``http:`` defaults; auth secrets are read from the environment.

        ``allow_private_networks`` is the top-level config key (the whole config), like ``http.allow_private_networks``.
        """
        auth = None
        if src.auth is not None:
            user = src.auth.username
            if src.auth.username_env is not None:
                user = os.environ.get(src.auth.username_env)
                if user is None:
                    raise FetchError(f"auth: environment variable {src.auth.username_env} is not set", source=src.name)
            password = os.environ.get(src.auth.password_env)
            if password is None:
                raise FetchError(f"auth: environment variable {src.auth.password_env} is not set", source=src.name)
            auth = (user or "", password)
        return cls(
            source=src.name,
            user_agent=pick(src.user_agent, http.user_agent),
            headers=tuple(src.headers.items()),
            cookies=tuple(src.cookies.items()),
            auth=auth,
            connect_timeout=pick(src.connect_timeout, http.connect_timeout),
            timeout=pick(src.timeout, http.timeout),
            verify=src.verify,
            allow_private_networks=pick(src.allow_private_networks, http.allow_private_networks or allow_private_networks),
            allow_networks=tuple(ipaddress.ip_network(n, strict=False) for n in http.allow_networks),
            max_bytes=pick(src.max_bytes, http.max_bytes),
            max_redirects=http.max_redirects,
            max_retry_after=parse_duration(http.max_retry_after),
            min_interval=parse_duration(pick(src.min_interval, http.min_interval)),
            max_connections=pick(src.max_connections, http.max_connections),
        )


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One completed GET (200 with its body, or 304 with none) and what the server said about it."""

    url: str  # as requested
    final_url: str  # after redirects
    status: int
    content: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    redirects: tuple[tuple[int, str], ...] = ()  # (status, target) per hop
    max_age: float | None = None  # Cache-Control max-age, seconds
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def permanent_redirect(self) -> str | None:
        """The final URL when every hop was a permanent redirect (301/308); None otherwise (a 302 never counts)."""
        if self.redirects and all(status in PERMANENT for status, _ in self.redirects):
            return self.final_url
        return None


# -- network guard ------------------------------------------------------------------------------------

def address_allowed(ip: str, opts: FetchOptions) -> bool:
    """Public unicast addresses always; private, loopback, link-local, multicast, reserved only when allowed."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if any(addr in net for net in opts.allow_networks):
        return True
    if opts.allow_private_networks:
        return not addr.is_unspecified
    return addr.is_global and not (addr.is_multicast or addr.is_reserved or addr.is_link_local)


class _Context:
    """Per-fetch state the connection classes read from the thread: the guard options and the deadline."""

    def __init__(self, opts: FetchOptions) -> None:
        self.opts = opts
        self.expired = False
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.timer = threading.Timer(opts.timeout, self.expire)
        self.timer.daemon = True
        self.started: float | None = None

    def start_deadline(self) -> float:
        """Start the total deadline once, when the first request goes out (time queued for a host slot
        does not count: a long ``min_interval`` must not turn into timeouts)."""
        if self.started is None:
            self.started = time.monotonic()
            self.timer.start()
        return self.started

    def check(self, ip: str, host: str, url: str | None = None) -> None:
        if not address_allowed(ip, self.opts):
            raise BlockedAddress(
                f"refused {host} ({ip}): private, loopback, link-local, multicast or reserved address "
                "(set allow_private_networks: true for an internal feed)",
                source=self.opts.source, url=url,
            )

    def register(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_local = threading.local()


def _context() -> _Context:
    ctx: _Context | None = getattr(_local, "ctx", None)
    if ctx is None:  # pragma: no cover - only fetch() opens these connections
        raise RuntimeError("guarded connection used outside fetch()")
    return ctx


class _GuardMixin:
    _dns_host: str
    port: int

    def _new_conn(self) -> socket.socket:
        ctx = _context()
        host = self._dns_host
        try:
            infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise FetchError(f"cannot resolve {host}: {exc.strerror}", source=ctx.opts.source) from None
        ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for ip in ips:  # one bad address is enough to refuse: a name must not point inside
            ctx.check(ip, host)
        self._dns_host = ips[0]
        try:
            sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = host
        try:
            ctx.check(str(sock.getpeername()[0]), host)
        except BlockedAddress:
            sock.close()
            raise
        ctx.register(sock)
        return sock


class _GuardedHTTPConnection(_GuardMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


def _check_url(url: str, ctx: _Context) -> str:
    """Only http/https; a literal IP host is checked before any connection is tried."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BlockedAddress(f"refused {url}: only http:// and https:// URLs are fetched", source=ctx.opts.source, url=url)
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(parts.hostname)
        ctx.check(parts.hostname, parts.hostname, url)
    return parts.hostname.lower()


# -- politeness ---------------------------------------------------------------------------------------

class HostLimiter:
    """Per host: at most ``max_connections`` requests at once, and ``min_interval`` seconds between starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = {}

    @contextlib.contextmanager
    def slot(self, host: str, min_interval: float, max_connections: int) -> Iterator[None]:
        with self._lock:
            sem = self._slots.setdefault(host, threading.BoundedSemaphore(max_connections))
        with sem:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next.get(host, 0.0))
                self._next[host] = start + min_interval
            if start > now:
                time.sleep(start - now)
            yield


LIMITER = HostLimiter()


# -- the fetch ----------------------------------------------------------------------------------------

def parse_retry_after(value: str | None, cap: float, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date), capped; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return min(float(value), cap)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - (now or clock.now())).total_seconds(), 0.0), cap)


def parse_max_age(cache_control: str | None) -> float | None:
    """``Cache-Control: max-age=N`` → N seconds (None for no-cache/no-store or no max-age)."""
    if not cache_control:
        return None
    m = re.search(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", cache_control, re.IGNORECASE)
    return float(m.group(1)) if m else None


def host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def fetch(
    url: str, opts: FetchOptions, *, etag: str | None = None, last_modified: str | None = None,
    limiter: HostLimiter | None = LIMITER,
) -> FetchResult:
    """GET ``url`` within the deadline, size cap, redirect cap and network guard; typed errors otherwise."""
    ctx = _Context(opts)
    previous = getattr(_local, "ctx", None)
    _local.ctx = ctx
    try:
        with requests.Session() as session:
            session.trust_env = False  # no proxies or .netrc from the environment: the guard sees the real peer
            session.mount("http://", _GuardedAdapter(max_retries=0))
            session.mount("https://", _GuardedAdapter(max_retries=0))
            return _fetch(session, url, ctx, etag, last_modified, limiter)
    except requests.exceptions.ConnectTimeout:
        raise Timeout(f"connect timeout after {opts.connect_timeout:g}s: {url}", source=opts.source, url=url) from None
    except (requests.exceptions.RequestException, OSError) as exc:
        if ctx.expired:
            raise Timeout(f"deadline of {opts.timeout:g}s passed: {url}", source=opts.source, url=url) from None
        if isinstance(exc, requests.exceptions.ReadTimeout):
            raise Timeout(f"read timeout: {url}", source=opts.source, url=url) from None
        raise FetchError(f"{type(exc).__name__}: {_short(exc)}", source=opts.source, url=url) from None
    finally:
        ctx.timer.cancel()
        _local.ctx = previous


def _short(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"\(Caused by (\w+)\(", text)
    return (m.group(1) + ": " if m else "") + text[:200]


def _fetch(
    session: requests.Session, url: str, ctx: _Context, etag: str | None, last_modified: str | None,
    limiter: HostLimiter | None,
) -> FetchResult:
    opts = ctx.opts
    origin = _check_url(url, ctx)
    current = url
    hops: list[tuple[int, str]] = []
    seen = {url}
    secure_origin = urlsplit(url).scheme.lower() == "https"
    while True:
        host = _check_url(current, ctx)
        # credentials, cookies and custom headers: only to the configured host, and never downgraded to http
        same_host = host == origin and not (secure_origin and urlsplit(current).scheme.lower() == "http")
        headers = {"User-Agent": opts.user_agent, "Accept-Encoding": "gzip, deflate",
                   "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
                             "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"}
        if same_host:
            headers.update(dict(opts.headers))
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        slot = limiter.slot(host_key(current), opts.min_interval, opts.max_connections) if limiter else contextlib.nullcontext()
        with slot:
            remaining = max(opts.timeout - (time.monotonic() - ctx.start_deadline()), 0.01)
            resp = session.get(
                current, headers=headers, stream=True, allow_redirects=False, verify=opts.verify,
                timeout=(min(opts.connect_timeout, remaining), remaining),
                cookies=dict(opts.cookies) if same_host else None,
                auth=opts.auth if same_host else None,
            )
            with resp:
                if resp.status_code in REDIRECTS and resp.headers.get("Location"):
                    target = urljoin(current, resp.headers["Location"])
                    hops.append((resp.status_code, target))
                    if target in seen:
                        raise FetchError(f"redirect loop: {current} → {target}", source=opts.source,
                                         status=resp.status_code, url=url)
                    if len(hops) > opts.max_redirects:
                        raise FetchError(f"too many redirects (more than {opts.max_redirects})",
                                         source=opts.source, status=resp.status_code, url=url)
                    seen.add(target)
                    current = target
                    continue
                return _finish(resp, url, current, tuple(hops), ctx)


def _finish(resp: requests.Response, url: str, final: str, hops: tuple[tuple[int, str], ...], ctx: _Context) -> FetchResult:
    opts = ctx.opts
    status = resp.status_code
    h = resp.headers
    if status == 410:
        raise Gone(f"410 Gone: {final}", source=opts.source, status=410, url=final)
    if status in (429, 503):
        wait = parse_retry_after(h.get("Retry-After"), opts.max_retry_after)
        hint = f", Retry-After {wait:g}s" if wait is not None else ""
        raise RetryLater(f"HTTP {status}{hint}: {final}", source=opts.source, status=status, url=final, retry_after=wait)
    if status != 304 and not 200 <= status < 300:
        raise FetchError(f"HTTP {status} {resp.reason or ''}: {final}".replace("  ", " "),
                         source=opts.source, status=status, url=final)
    content = b"" if status == 304 else _read_capped(resp, ctx, final)
    return FetchResult(
        url=url, final_url=final, status=status, content=content, content_type=h.get("Content-Type"),
        etag=h.get("ETag"), last_modified=h.get("Last-Modified"), redirects=hops,
        max_age=parse_max_age(h.get("Cache-Control")), headers={k.lower(): v for k, v in h.items()},
    )


def _read_capped(resp: requests.Response, ctx: _Context, url: str) -> bytes:
    """Read the decompressed body in chunks; stop as soon as it passes the cap."""
    cap = ctx.opts.max_bytes
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and "Content-Encoding" not in resp.headers and int(declared) > cap:
        raise TooLarge(f"response of {declared} bytes is over the cap of {cap}: {url}", source=ctx.opts.source, url=url)
    parts: list[bytes] = []
    total = 0
    for chunk in resp.iter_content(CHUNK):
        total += len(chunk)
        if total > cap:
            raise TooLarge(f"response passed the cap of {cap} bytes (decompressed): {url}", source=ctx.opts.source, url=url)
        parts.append(chunk)
    if ctx.expired:
        raise Timeout(f"deadline of {ctx.opts.timeout:g}s passed: {url}", source=ctx.opts.source, url=url)
    return b"".join(parts)

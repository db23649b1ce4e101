"""A real HTTP server on 127.0.0.1 whose routes the tests script (status, headers, body, slow drips …)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "remote"


@dataclass
class Reply:
    """What a route answers; ``body`` may be an iterable of chunks (sent with the given pause between them)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""
    pause: float = 0.0
    delay: float = 0.0  # think time before answering (the request counts as active meanwhile)


@dataclass
class Seen:
    """One request the server received (recorded when it arrives; ``finished`` set when answered)."""

    method: str
    path: str
    headers: dict[str, str]
    started: float
    finished: float = 0.0


Handler = Callable[["Request"], Reply]


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    count: int  # how many times this path was requested, this one included


class Web:
    """Routes by path; every request is recorded (headers, start/end times) for assertions."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, handler: Handler | Reply) -> None:
        self.routes[path] = handler if callable(handler) else (lambda req, r=handler: r)

    def file(self, path: str, name: str, content_type: str, **headers: str) -> None:
        data = (DATA / name).read_bytes()
        self.route(path, Reply(200, {"Content-Type": content_type, **headers}, data))

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        web = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                seen = Seen("GET", self.path, dict(self.headers), time.monotonic())
                with web.lock:
                    web.active += 1
                    web.max_active = max(web.max_active, web.active)
                    count = 1 + sum(1 for s in web.seen if s.path == self.path)
                    web.seen.append(seen)
                active = True
                try:
                    handler = web.routes.get(self.path)
                    reply = handler(Request(self.path, dict(self.headers), count)) if handler else Reply(404, {}, b"no")
                    if reply.delay:
                        time.sleep(reply.delay)
                    self.send_response(reply.status)
                    body = reply.body
                    if isinstance(body, bytes) and "Content-Length" not in reply.headers:
                        reply.headers["Content-Length"] = str(len(body))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    with web.lock:  # no longer "active" once answering: a serial client waits for the answer,
                        web.active -= 1  # so two requests active at once really were concurrent
                        active = False
                    self.end_headers()
                    try:
                        for chunk in [body] if isinstance(body, bytes) else body:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                            if reply.pause:
                                time.sleep(reply.pause)
                    except OSError:
                        pass  # the client hung up (deadline, size cap): that is the point of the test
                finally:
                    with web.lock:
                        if active:
                            web.active -= 1
                        seen.finished = time.monotonic()

        return H


@pytest.fixture
def web() -> Iterator[Web]:
    w = Web()
    w.thread.start()
    yield w
    w.server.shutdown()
    w.server.server_close()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed (about a thousandth of the size on the wire)."""
    return gzip.compress(b"\0" * size, compresslevel=9)

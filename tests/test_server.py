"""The server on a real socket: types, validators, 304s, HEAD, gzip, 404/405, no traversal."""

from __future__ import annotations

import gzip
import http.client
import os
import threading
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from syndicator.server import accepts_gzip, create_server, etag_matches, make_app

ATOM = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
    + b"x" * 2000
    + b"</feed>\n"
)
MTIME = 1_714_550_400  # 2024-05-01T08:00:00Z


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    out = tmp_path / "feeds"
    (out / "tags").mkdir(parents=True)
    (out / "articles").mkdir()
    files = {
        "all.atom": ATOM,
        "all.rss": b"<rss version='2.0'><channel/></rss>",
        "feeds.opml": b"<opml version='2.0'/>",
        "index.html": "<!DOCTYPE html><title>首页</title>".encode(),
        "tags/shizheng.atom": ATOM,
        "articles/abc.html": b"<p>a</p>",
        "digest.json": b"{}",
        "digest.md": b"# d",
        "site.css": b"body{}",
        ".syndicator-tmp-x.part": b"half",
    }
    for rel, data in files.items():
        (out / rel).write_bytes(data)
        os.utime(out / rel, (MTIME, MTIME))
    (tmp_path / "secret.txt").write_text("TOP-SECRET-BYTES")
    (out / "escape").symlink_to(tmp_path / "secret.txt")
    (out / "escapedir").symlink_to(tmp_path, target_is_directory=True)
    return out


@pytest.fixture
def server(out_dir: Path) -> Iterator[tuple[str, int]]:
    def healthz(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    srv = create_server(out_dir, "127.0.0.1", 0, {"/healthz": healthz})
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", srv.effective_port
    finally:
        # close inside the server's own loop thread, then the loop ends with an empty socket map
        srv.trigger.pull_trigger(srv.close)
        thread.join(timeout=10)
        srv.task_dispatcher.shutdown()


def request(
    server: tuple[str, int], path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*server, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/all.atom", "application/atom+xml; charset=utf-8"),
        ("/all.rss", "application/rss+xml; charset=utf-8"),
        ("/feeds.opml", "text/x-opml; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
        ("/tags/shizheng.atom", "application/atom+xml; charset=utf-8"),
        ("/articles/abc.html?utm=1", "text/html; charset=utf-8"),
        ("/digest.json", "application/json"),
        ("/digest.md", "text/markdown; charset=utf-8"),
        ("/site.css", "text/css; charset=utf-8"),
    ],
)
def test_content_types(server: tuple[str, int], out_dir: Path, path: str, ctype: str) -> None:
    status, headers, body = request(server, path)
    assert status == 200
    assert headers["content-type"] == ctype
    rel = path.split("?")[0].lstrip("/") or "index.html"
    assert body == (out_dir / rel).read_bytes()
    assert headers["content-length"] == str(len(body))
    assert headers["cache-control"] == "public, max-age=60"
    assert headers["last-modified"] == formatdate(MTIME, usegmt=True)
    assert headers["etag"].startswith('"') and headers["etag"].endswith('"')


def test_etag_and_304(server: tuple[str, int]) -> None:
    _, headers, _ = request(server, "/all.atom")
    etag = headers["etag"]
    status, h304, body = request(server, "/all.atom", headers={"If-None-Match": etag})
    assert (status, body, h304["etag"]) == (304, b"", etag)
    assert request(server, "/all.atom", headers={"If-None-Match": f'"nope", W/{etag}'})[0] == 304
    assert request(server, "/all.atom", headers={"If-None-Match": "*"})[0] == 304
    assert request(server, "/all.atom", headers={"If-None-Match": '"other"'})[0] == 200
    # same bytes at another path → same ETag (a hash of the bytes)
    assert request(server, "/tags/shizheng.atom")[1]["etag"] == etag


def test_if_modified_since(server: tuple[str, int]) -> None:
    lm = formatdate(MTIME, usegmt=True)
    assert request(server, "/all.atom", headers={"If-Modified-Since": lm})[0] == 304
    assert (
        request(server, "/all.atom", headers={"If-Modified-Since": formatdate(MTIME + 60, usegmt=True)})[0]
        == 304
    )
    assert (
        request(server, "/all.atom", headers={"If-Modified-Since": formatdate(MTIME - 60, usegmt=True)})[0]
        == 200
    )
    assert request(server, "/all.atom", headers={"If-Modified-Since": "garbage"})[0] == 200
    # If-None-Match wins over If-Modified-Since
    assert request(server, "/all.atom", headers={"If-Modified-Since": lm, "If-None-Match": '"x"'})[0] == 200


def test_file_change_is_seen(server: tuple[str, int], out_dir: Path) -> None:
    _, first, _ = request(server, "/all.rss")
    new = out_dir / "new.tmp"
    new.write_bytes(b"<rss version='2.0'><channel><title>n</title></channel></rss>")
    os.replace(new, out_dir / "all.rss")
    status, headers, body = request(server, "/all.rss", headers={"If-None-Match": first["etag"]})
    assert status == 200 and b"<title>n</title>" in body and headers["etag"] != first["etag"]


def test_head(server: tuple[str, int]) -> None:
    status, headers, body = request(server, "/all.atom", method="HEAD")
    assert status == 200 and body == b""
    assert headers["content-length"] == str(len(ATOM))
    assert headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert request(server, "/missing.atom", method="HEAD")[0] == 404


def test_gzip(server: tuple[str, int]) -> None:
    plain = request(server, "/all.atom")[1]
    status, headers, body = request(server, "/all.atom", headers={"Accept-Encoding": "gzip, deflate"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == ATOM
    assert headers["etag"] != plain["etag"] and headers["etag"].endswith('-gz"')
    assert (
        request(server, "/all.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]})[0]
        == 304
    )
    no = request(server, "/all.atom", headers={"Accept-Encoding": "gzip;q=0, identity"})[1]
    assert "content-encoding" not in no and no["vary"] == "Accept-Encoding"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/tags/%2E%2E/%2e%2e/secret.txt",
        "/tags/..%2f..%2fsecret.txt",
        "//etc/passwd",
        "/escape",
        "/escapedir/secret.txt",
        "/.syndicator-tmp-x.part",
        "/missing.atom",
        "/all.atom%00.html",
        "/tags/",
    ],
)
def test_not_found_and_no_traversal(server: tuple[str, int], path: str) -> None:
    status, headers, body = request(server, path)
    assert status in (400, 404)
    assert b"TOP-SECRET-BYTES" not in body and b"half" not in body and b"root:" not in body
    if status == 404:
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert b"404" in body


def test_method_not_allowed(server: tuple[str, int]) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = request(server, "/all.atom", method=method)
        assert status == 405
        assert headers["allow"] == "GET, HEAD"


def test_extra_routes(server: tuple[str, int]) -> None:
    assert request(server, "/healthz")[:3:2] == (200, b"ok")


def test_helpers() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("br, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("") and not accepts_gzip("gzip;q=0") and not accepts_gzip("*, gzip;q=0")
    assert not accepts_gzip("identity") and not accepts_gzip("*;q=0")
    assert etag_matches('W/"a"', ['"a"']) == '"a"'
    assert etag_matches('"b", "a"', ['"a"']) == '"a"'
    assert etag_matches('"b"', ['"a"']) is None


def test_app_without_socket(out_dir: Path) -> None:
    app = make_app(out_dir)
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Any:
        seen.append(status)
        return lambda data: None

    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/all.atom"}, start_response))
    assert seen == ["200 OK"] and body == ATOM

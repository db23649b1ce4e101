"""A web node serves the outputs stored in PostgreSQL exactly as the file server serves the folder."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config
from sqlalchemy import create_engine

from syndicator import config as config_mod
from syndicator.render.write import detach_store, etag_of
from syndicator.server import StaticApp, StoredApp
from syndicator.storage.engine import open_database
from syndicator.storage.outputs import DbOutputStore
from syndicator.storage.repo import Repository
from syndicator.sync import sync

pytestmark = pytest.mark.postgres


def call(app: Any, path: str, method: str = "GET", **headers: str) -> tuple[str, dict[str, str], bytes]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method}
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    seen: dict[str, Any] = {}

    def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(hdrs)
        return lambda _b: None

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


@pytest.fixture
def published(tmp_path: Path, archive: Path, pg_url: str) -> Iterator[tuple[Path, DbOutputStore]]:
    settings = config_mod.load(write_config(tmp_path, archive, db_url=pg_url))
    repo = Repository(open_database(pg_url))
    sync(settings, repo)  # single process on PostgreSQL: files and the database both get the outputs
    yield settings.output.dir, DbOutputStore(repo.engine)
    detach_store(settings.output.dir)
    repo.engine.dispose()


SAME = ("ETag", "Content-Type", "Content-Length", "Content-Encoding", "Vary", "Cache-Control",
        "X-Content-Type-Options")


def test_stored_outputs_are_the_files(published: tuple[Path, DbOutputStore]) -> None:
    out, store = published
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    stored = store.all_etags()
    assert set(stored) == set(files) and "all.atom" in stored and "index.html" in stored
    for rel, data in files.items():
        assert stored[rel] == etag_of(data)


def test_web_node_answers_like_the_file_server(published: tuple[Path, DbOutputStore]) -> None:
    out, store = published
    files, db = StaticApp(out), StoredApp(store)
    paths = ["/", *(f"/{p}" for p in sorted(store.all_etags()))]
    for path in paths:
        if path.startswith("/.syndicator/"):  # the settings of the last full render: internal, served by neither
            assert call(files, path)[0] == call(db, path)[0] == "404 Not Found", path
            continue
        for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"accept_encoding": "gzip"})):
            a, b = call(files, path, method, **headers), call(db, path, method, **headers)
            assert a[0] == b[0] == "200 OK", path
            assert {k: a[1].get(k) for k in SAME} == {k: b[1].get(k) for k in SAME}, path
            assert a[2] == b[2], path
        etag = call(db, path)[1]["ETag"]
        for inm in (etag, f'W/{etag}', etag[:-1] + '-gz"', "*"):
            status, hdrs, body = call(db, path, If_None_Match=inm)
            assert status == "304 Not Modified" and body == b"" and hdrs["ETag"]
        assert call(db, path, If_Modified_Since=call(db, path)[1]["Last-Modified"])[0] == "304 Not Modified"
    gz = call(db, "/all.atom", accept_encoding="gzip")
    assert gz[1]["Content-Encoding"] == "gzip" and gzip.decompress(gz[2]) == call(db, "/all.atom")[2]
    for bad in ("/nope.atom", "/../all.atom", "/%2e%2e/all.atom", "/.syndicator-tmp-x.part", "/tags/"):
        assert call(files, bad)[0] == call(db, bad)[0] == "404 Not Found", bad
    assert call(db, "/all.atom", "POST")[0] == "405 Method Not Allowed"


def test_cache_follows_the_etag_and_rides_out_a_database_outage(published: tuple[Path, DbOutputStore]) -> None:
    _, store = published
    app = StoredApp(store)
    first = call(app, "/all.atom")
    assert call(app, "/all.atom")[2] == first[2]
    store.put("all.atom", first[2] + b"<!-- changed -->")  # another worker re-rendered it
    second = call(app, "/all.atom")
    assert second[2].endswith(b"<!-- changed -->") and second[1]["ETag"] != first[1]["ETag"]
    assert call(app, "/all.atom", If_None_Match=first[1]["ETag"])[0] == "200 OK"
    # the database goes away: what this node has seen is still served, the rest is 503
    down = DbOutputStore(create_engine("postgresql+psycopg://postgres@127.0.0.1:1/test",
                                       connect_args={"connect_timeout": 2}))
    app.source = down
    third = call(app, "/all.atom")
    assert third[0] == "200 OK" and third[2] == second[2]
    assert call(app, "/all.rss")[0] == "503 Service Unavailable"

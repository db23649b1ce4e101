"""sources/http.py against a real server on 127.0.0.1: deadlines, caps, redirects, the network guard, 304s."""

from __future__ import annotations

import itertools
import time
import tracemalloc
from datetime import UTC, datetime

import pytest

from syndicator.config import HttpSettings, SourceSettings
from syndicator.errors import BlockedAddress, FetchError, Gone, RetryLater, Timeout, TooLarge
from syndicator.sources import http
from syndicator.sources.http import (
    FetchOptions,
    HostLimiter,
    address_allowed,
    parse_max_age,
    parse_retry_after,
)

from .conftest import Reply, Web, gzip_bomb, gzipped


def opts(**kw: object) -> FetchOptions:
    base: dict[str, object] = {"source": "t", "user_agent": "syndicator-test/1 (+https://newsroom.example)",
                               "allow_private_networks": True, "timeout": 5.0, "connect_timeout": 2.0}
    base.update(kw)
    return FetchOptions(**base)  # type: ignore[arg-type]


def test_200_with_etag_then_304_sends_validators_and_user_agent(web: Web) -> None:
    def handler(req: object) -> Reply:
        from .conftest import Request

        assert isinstance(req, Request)
        if req.headers.get("If-None-Match") == '"v1"':
            return Reply(304, {"ETag": '"v1"', "Cache-Control": "max-age=600"})
        return Reply(200, {"Content-Type": "application/rss+xml", "ETag": '"v1"',
                           "Last-Modified": "Tue, 22 Jan 2019 08:00:00 GMT"}, b"<rss/>")

    web.route("/feed", handler)
    first = http.fetch(web.url("/feed"), opts())
    assert (first.status, first.content, first.etag) == (200, b"<rss/>", '"v1"')
    second = http.fetch(web.url("/feed"), opts(), etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.content == b"" and second.max_age == 600
    sent = web.requests("/feed")[1].headers
    assert sent["If-None-Match"] == '"v1"' and sent["If-Modified-Since"] == "Tue, 22 Jan 2019 08:00:00 GMT"
    assert sent["User-Agent"] == "syndicator-test/1 (+https://newsroom.example)"


def test_gzip_body_is_decompressed(web: Web) -> None:
    web.route("/gz", Reply(200, {"Content-Encoding": "gzip", "Content-Type": "text/xml"}, gzipped(b"<rss>ok</rss>")))
    assert http.fetch(web.url("/gz"), opts()).content == b"<rss>ok</rss>"


def test_gzip_bomb_is_stopped_at_the_cap_on_decompressed_bytes(web: Web) -> None:
    bomb = gzip_bomb(128 * 1024 * 1024)
    assert len(bomb) < 200 * 1024  # small on the wire
    web.route("/bomb", Reply(200, {"Content-Encoding": "gzip", "Content-Type": "application/xml"}, bomb))
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge, match="cap of 1048576 bytes"):
            http.fetch(web.url("/bomb"), opts(max_bytes=1024 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2  # stopped early, not after inflating 128 MB
    assert peak < 8 * 1024 * 1024, peak  # and never held more than a few chunks in memory


def test_declared_length_over_the_cap_is_refused_before_reading(web: Web) -> None:
    web.route("/big", Reply(200, {"Content-Type": "application/xml"}, b"x" * 5000))
    with pytest.raises(TooLarge, match="5000 bytes"):
        http.fetch(web.url("/big"), opts(max_bytes=1024))


def test_slow_drip_hits_the_total_deadline(web: Web) -> None:
    web.route("/drip", Reply(200, {"Content-Type": "application/xml"}, (b"<" for _ in range(60)), pause=1.0))
    started = time.monotonic()
    with pytest.raises(Timeout, match="deadline of 2s"):
        http.fetch(web.url("/drip"), opts(timeout=2.0))
    assert time.monotonic() - started < 4


def test_redirect_loop_and_too_many_redirects(web: Web) -> None:
    web.route("/a", Reply(302, {"Location": "/b"}))
    web.route("/b", Reply(302, {"Location": "/a"}))
    with pytest.raises(FetchError, match="redirect loop"):
        http.fetch(web.url("/a"), opts())
    for n in range(7):
        web.route(f"/r{n}", Reply(301, {"Location": f"/r{n + 1}"}))
    web.route("/r7", Reply(200, {}, b"end"))
    with pytest.raises(FetchError, match="too many redirects"):
        http.fetch(web.url("/r0"), opts())
    assert http.fetch(web.url("/r2"), opts()).content == b"end"  # 5 hops: allowed


def test_permanent_redirect_is_reported_and_a_302_is_not(web: Web) -> None:
    web.route("/old", Reply(301, {"Location": "/mid"}))
    web.route("/mid", Reply(308, {"Location": "/new"}))
    web.route("/new", Reply(200, {}, b"x"))
    web.route("/tmp", Reply(302, {"Location": "/new"}))
    web.route("/mixed", Reply(301, {"Location": "/tmp"}))
    assert http.fetch(web.url("/old"), opts()).permanent_redirect == web.url("/new")
    assert http.fetch(web.url("/tmp"), opts()).permanent_redirect is None
    assert http.fetch(web.url("/mixed"), opts()).permanent_redirect is None


def test_status_errors_are_typed(web: Web) -> None:
    web.route("/gone", Reply(410))
    web.route("/busy", Reply(429, {"Retry-After": "120"}))
    web.route("/down", Reply(503, {"Retry-After": "999999"}))
    web.route("/err", Reply(500, {}, b"oops"))
    with pytest.raises(Gone):
        http.fetch(web.url("/gone"), opts())
    with pytest.raises(RetryLater) as busy:
        http.fetch(web.url("/busy"), opts())
    assert busy.value.retry_after == 120 and busy.value.status == 429
    with pytest.raises(RetryLater) as down:
        http.fetch(web.url("/down"), opts(max_retry_after=3600.0))
    assert down.value.retry_after == 3600  # capped
    with pytest.raises(FetchError, match="HTTP 500") as err:
        http.fetch(web.url("/err"), opts())
    assert err.value.status == 500
    with pytest.raises(FetchError, match="HTTP 404"):
        http.fetch(web.url("/missing"), opts())


def test_guard_refuses_loopback_by_default_and_on_a_redirect_hop(web: Web) -> None:
    web.route("/feed", Reply(200, {}, b"x"))
    with pytest.raises(BlockedAddress, match=r"127\.0\.0\.1"):
        http.fetch(web.url("/feed"), opts(allow_private_networks=False))
    # a name that resolves to loopback is refused too (the check is on the resolved/connected address)
    with pytest.raises(BlockedAddress, match="localhost"):
        http.fetch(f"http://localhost:{web.port}/feed", opts(allow_private_networks=False))
    assert web.requests("/feed") == []  # nothing was even sent
    # allowed for this internal feed, but its redirect to the metadata address is refused
    web.route("/jump", Reply(302, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    with pytest.raises(BlockedAddress, match=r"169\.254\.169\.254"):
        http.fetch(web.url("/jump"), opts(allow_private_networks=False, allow_networks=(
            __import__("ipaddress").ip_network("127.0.0.1/32"),)))


def test_only_http_and_https(web: Web) -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/feed", "gopher://x/"):
        with pytest.raises(BlockedAddress, match="only http"):
            http.fetch(url, opts())
    web.route("/to-file", Reply(301, {"Location": "file:///etc/passwd"}))
    with pytest.raises(BlockedAddress, match="only http"):
        http.fetch(web.url("/to-file"), opts())


def test_credentials_and_custom_headers_do_not_follow_a_redirect_to_another_host(web: Web) -> None:
    web.route("/private", Reply(302, {"Location": f"http://localhost:{web.port}/landing"}))
    web.route("/landing", Reply(200, {}, b"ok"))
    o = opts(headers=(("X-Token", "s3cret"),), auth=("u", "p"), cookies=(("sid", "42"),))
    assert http.fetch(web.url("/private"), o).content == b"ok"
    first, second = web.requests("/private")[0].headers, web.requests("/landing")[0].headers
    assert first["X-Token"] == "s3cret" and first["Authorization"] == "Basic dTpw" and first["Cookie"] == "sid=42"
    assert "X-Token" not in second and "Authorization" not in second and "Cookie" not in second


def test_address_allowed() -> None:
    closed = opts(allow_private_networks=False)
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fe80::1", "224.0.0.1",
               "0.0.0.0", "100.64.0.1", "240.0.0.1", "::ffff:127.0.0.1", "fc00::1"):
        assert not address_allowed(ip, closed), ip
    for ip in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        assert address_allowed(ip, closed), ip
    assert address_allowed("10.1.2.3", opts(allow_private_networks=True))


def test_retry_after_and_max_age_parsing() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30", 3600, now) == 30
    assert parse_retry_after("Wed, 01 May 2024 12:10:00 GMT", 3600, now) == 600
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", 3600, now) == 0
    assert parse_retry_after("Thu, 01 Jan 2099 00:00:00 GMT", 3600, now) == 3600
    assert parse_retry_after("soon", 3600, now) is None
    assert parse_max_age("public, max-age=900") == 900
    assert parse_max_age("no-cache") is None


def test_per_host_min_interval_and_concurrency() -> None:
    limiter = HostLimiter()
    starts: list[float] = []
    import threading

    active = [0, 0]
    lock = threading.Lock()

    def one() -> None:
        with limiter.slot("h:80", 0.2, 1):
            with lock:
                active[0] += 1
                active[1] = max(active[1], active[0])
                starts.append(time.monotonic())
            time.sleep(0.05)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert active[1] == 1
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(starts))


def test_time_queued_for_a_host_slot_does_not_count_against_the_deadline(web: Web) -> None:
    web.route("/feed", Reply(200, {}, b"ok"))
    limiter = HostLimiter()
    o = opts(timeout=1.0, min_interval=1.5)
    assert http.fetch(web.url("/feed"), o, limiter=limiter).content == b"ok"
    assert http.fetch(web.url("/feed"), o, limiter=limiter).content == b"ok"  # waited 1.5s, then fetched
    first, second = web.requests("/feed")
    assert second.started - first.started >= 1.4


def test_options_from_config_read_auth_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    src = SourceSettings.model_validate({
        "name": "wire", "type": "feed", "url": "https://wire.example.com/rss", "timeout": 7,
        "headers": {"X-Key": "k"}, "auth": {"username": "newsroom", "password_env": "WIRE_PASSWORD"},
    })
    monkeypatch.delenv("WIRE_PASSWORD", raising=False)
    with pytest.raises(FetchError, match="WIRE_PASSWORD is not set"):
        FetchOptions.for_source(src, HttpSettings())
    monkeypatch.setenv("WIRE_PASSWORD", "pw")
    o = FetchOptions.for_source(src, HttpSettings(user_agent="UA/1"), allow_private_networks=True)
    assert o.auth == ("newsroom", "pw") and o.timeout == 7 and o.user_agent == "UA/1"
    assert o.allow_private_networks and o.headers == (("X-Key", "k"),)

"""HTTPS through the guarded connection: certificate and host name checks still work, ``verify`` options."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from syndicator.errors import BlockedAddress, FetchError
from syndicator.sources import http
from syndicator.sources.http import FetchOptions

from .conftest import Reply, Web


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_web(ca: trustme.CA) -> Iterator[Web]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    w = Web()
    w.server.socket = ctx.wrap_socket(w.server.socket, server_side=True)
    w.route("/feed", Reply(200, {"Content-Type": "application/rss+xml"}, b"<rss/>"))
    w.thread.start()
    yield w
    w.server.shutdown()
    w.server.server_close()


def opts(verify: bool | str, private: bool = True) -> FetchOptions:
    return FetchOptions(source="tls", user_agent="t", verify=verify, allow_private_networks=private, timeout=5.0)


def test_a_certificate_from_an_unknown_ca_is_a_typed_error(tls_web: Web) -> None:
    with pytest.raises(FetchError, match="SSLError") as exc:
        http.fetch(f"https://localhost:{tls_web.port}/feed", opts(True))
    assert "\n" not in str(exc.value)


def test_verify_with_a_ca_bundle_checks_the_host_name(tls_web: Web, ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    for host in ("localhost", "127.0.0.1"):  # the guard connects to the checked IP; TLS still checks the name
        assert http.fetch(f"https://{host}:{tls_web.port}/feed", opts(str(bundle))).content == b"<rss/>"
    other = trustme.CA()
    wrong = tmp_path / "other.pem"
    other.cert_pem.write_to_path(str(wrong))
    with pytest.raises(FetchError, match="SSLError"):
        http.fetch(f"https://localhost:{tls_web.port}/feed", opts(str(wrong)))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_false_and_the_guard_over_https(tls_web: Web) -> None:
    assert http.fetch(f"https://localhost:{tls_web.port}/feed", opts(False)).content == b"<rss/>"
    with pytest.raises(BlockedAddress):
        http.fetch(f"https://localhost:{tls_web.port}/feed", opts(False, private=False))


def test_credentials_are_not_sent_after_a_downgrade_to_http(tls_web: Web, web: Web, ca: trustme.CA,
                                                            tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    tls_web.route("/down", Reply(302, {"Location": f"http://localhost:{web.port}/landing"}))
    web.route("/landing", Reply(200, {}, b"plain"))
    o = FetchOptions(source="tls", user_agent="t", verify=str(bundle), allow_private_networks=True,
                     auth=("u", "p"), headers=(("X-Token", "s3cret"),), cookies=(("sid", "1"),))
    assert http.fetch(f"https://localhost:{tls_web.port}/down", o).content == b"plain"
    assert tls_web.requests("/down")[0].headers["Authorization"] == "Basic dTpw"
    landing = web.requests("/landing")[0].headers
    assert "Authorization" not in landing and "X-Token" not in landing and "Cookie" not in landing

"""Optional: the W3C feed validator, run offline (https://github.com/w3c/feedvalidator).

Set SYNDICATOR_FEEDVALIDATOR to its ``src`` folder (and SYNDICATOR_FEEDVALIDATOR_PYTHON to a Python that
has html5lib, if the project's does not); the test is skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from syndicator.render.feeds import render_feed
from syndicator.types import FeedSpec, SiteInfo

from .conftest import BASE

SRC = os.environ.get("SYNDICATOR_FEEDVALIDATOR")
PYTHON = os.environ.get("SYNDICATOR_FEEDVALIDATOR_PYTHON", sys.executable)

DRIVER = """
import sys
sys.path.insert(0, sys.argv[1])
import feedvalidator
from feedvalidator import compatibility
from feedvalidator.formatter.text_plain import Formatter
with open(sys.argv[2], "rb") as fh:
    events = feedvalidator.validateStream(fh, contentType=sys.argv[4], base=sys.argv[3])["loggedEvents"]
print("\\n".join(Formatter(compatibility.AA(events))))
"""

pytestmark = pytest.mark.skipif(not SRC, reason="SYNDICATOR_FEEDVALIDATOR (feedvalidator src folder) not set")


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_w3c_validator_is_silent(
    fmt: str, spec: FeedSpec, tag_spec: FeedSpec, site: SiteInfo, tmp_path: Path
) -> None:
    media = {"atom": "application/atom+xml", "rss": "application/rss+xml"}[fmt]
    for feed in (spec, tag_spec):
        path = tmp_path / f"feed.{fmt}"
        path.write_bytes(render_feed(feed, site, fmt))  # type: ignore[arg-type]
        result = subprocess.run(
            [
                PYTHON,
                "-c",
                DRIVER,
                str(SRC),
                str(path),
                f"{BASE}{feed.path}.{fmt}",
                f"{media}; charset=utf-8",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert result.stdout.strip() == "", result.stdout


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_w3c_validator_is_silent_on_the_digest_feed(fmt: str, site: SiteInfo, tmp_path: Path) -> None:
    from datetime import UTC, date, datetime, timedelta

    from syndicator.render.digest import build_digest, render_digest_feed
    from syndicator.types import Carrier, DigestOptions

    from .conftest import make_entry

    digests = []
    for offset in range(2):
        day = date(2024, 5, 1) + timedelta(days=offset)
        t = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
        entries = [make_entry(n + 10 * offset, published=t + timedelta(hours=n), updated=t + timedelta(hours=n),
                              also_in=(Carrier("重庆频道", "https://cq.example.org/1"),) if n == 0 else ())
                   for n in range(3)]
        digests.append(build_digest(day, entries, DigestOptions(), t + timedelta(hours=5)))
    media = {"atom": "application/atom+xml", "rss": "application/rss+xml"}[fmt]
    path = tmp_path / f"digest.{fmt}"
    path.write_bytes(render_digest_feed(site, digests, fmt))  # type: ignore[arg-type]
    result = subprocess.run(
        [PYTHON, "-c", DRIVER, str(SRC), str(path), f"{BASE}digest.{fmt}", f"{media}; charset=utf-8"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert result.stdout.strip() == "", result.stdout

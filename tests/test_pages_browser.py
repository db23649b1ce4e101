"""The reading pages in a real browser: headless Chromium loads the front page, a tag page and a digest page
from the real server, takes a screenshot of each, and every link on them resolves (no 404)."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from click.testing import CliRunner
from conftest import SEED_FILE, write_config
from lxml import html as lxml_html

from syndicator.cli import main
from syndicator.server import create_server

SEED_TITLE = "重庆市应急系统扎实推进安全生产形势持续稳定好转"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def variant(seed: str, *, title: str | None = None, date: str | None = None, extra: str = "") -> str:
    """The seed post with another title line, date line and/or another first paragraph."""
    text = seed
    if title is not None:
        text = re.sub(r"^title: .*$", f"title: {title}", text, count=1, flags=re.M)
    if date is not None:
        text = re.sub(r"^date: .*$", f"date: {date}", text, count=1, flags=re.M)
    if extra:  # a first paragraph of its own, so the body (and its hash) differs from the seed's
        text = text.replace("<!-- more -->\n", f"<!-- more -->\n{extra}\n", 1)
    return text


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An archive (the seed carried by three channels, plus posts at 23:59 and 00:30 local time), synced
    and digested, served by the real server; yields (base URL, output folder)."""
    folder = tmp_path / "archive"
    folder.mkdir()
    seed = SEED_FILE.read_text(encoding="utf-8")
    shutil.copy2(SEED_FILE, folder / SEED_FILE.name)
    (folder / "henan.md").write_text(variant(seed, title=f"{SEED_TITLE}_河南频道"), encoding="utf-8")
    (folder / "sichuan.md").write_text(variant(seed, title=f"{SEED_TITLE}_四川频道"), encoding="utf-8")
    (folder / "late.md").write_text(
        variant(seed, title="深夜的应急管理新闻_重庆频道", date="2019-02-25- 23:59", extra="深夜补充一句。"),
        encoding="utf-8")
    (folder / "early.md").write_text(
        variant(seed, title="凌晨的安全生产新闻_重庆频道", date="2019-02-26- 00:30", extra="凌晨补充一句。"),
        encoding="utf-8")
    out = tmp_path / "feeds"
    out.mkdir()
    server = create_server(out, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}/"
    try:
        site_cfg = {"title": "重庆新闻", "description": "本地新闻汇总", "base_url": base,
                    "timezone": "Asia/Shanghai", "language": "zh-CN"}
        config = write_config(tmp_path, folder, site=site_cfg)
        runner = CliRunner()
        for args in (["sync"], ["digest", "--date", "2019-02-25"]):
            result = runner.invoke(main, ["--config", str(config), *args], catch_exceptions=False)
            assert result.exit_code == 0, result.output
        yield base, out
    finally:
        server.trigger.pull_trigger(server.close)
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM, "headless Chromium is needed (Debian package chromium; .ci/run installs it)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run(cmd, capture_output=True, timeout=120, env=env, check=True)


def status(url: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        return conn.getresponse().status
    finally:
        conn.close()


def test_pages_render_in_headless_chromium_and_every_link_resolves(site: tuple[str, Path], tmp_path: Path) -> None:
    base, out = site
    shots = Path(os.environ.get("SYNDICATOR_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    tag_page = "tags/an-quan-sheng-chan.html"
    pages = {
        "index.html": ["重庆新闻", "共 3 条新闻", "每日摘要", "安全生产", "订阅", f"{base}digest.atom",
                       "2019-02-26"],
        tag_page: ["安全生产", SEED_TITLE, "凌晨的安全生产新闻"],
        "digest/2019-02-25.html": ["每日摘要 2019-02-25", SEED_TITLE, "深夜的应急管理新闻", "23:59",
                                   "重庆频道、河南频道、四川频道"],
    }
    checked: set[str] = set()
    for page, expected in pages.items():
        url = base + page
        shot = shots / (page.replace("/", "_") + ".png")
        chromium(tmp_path, "--window-size=412,915", f"--screenshot={shot}", url)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000, page
        dom = chromium(tmp_path, "--dump-dom", url).stdout.decode("utf-8")
        for text in expected:
            assert text in dom, (page, text)
        tree = lxml_html.fromstring(dom)
        assert tree.get("lang") == "zh-CN" and not tree.xpath("//script")
        links = [urldefrag(urljoin(url, h))[0] for h in tree.xpath("//a/@href | //link/@href")]
        assert links, page
        for link in links:
            if link.startswith(base) and link not in checked:
                checked.add(link)
                assert status(link) == 200, (page, link)
    # the digest page prints (print stylesheet: no navigation)
    pdf = tmp_path / "digest.pdf"
    chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", base + "digest/2019-02-25.html")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5000
    # the story three channels carried is listed once on the digest page, with its channels
    digest_dom = (out / "digest/2019-02-25.html").read_text("utf-8")
    assert digest_dom.count(SEED_TITLE) == 1
    # the 00:30 post is on the next local day, not on 2019-02-25
    assert "凌晨的安全生产新闻" not in digest_dom
    assert "凌晨的安全生产新闻" in (out / "digest/2019-02-26.html").read_text("utf-8")
    assert len(checked) > 20

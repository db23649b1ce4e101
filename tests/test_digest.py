"""The daily digest end to end on a real database (SQLite and PostgreSQL), real files and a real SMTP server."""

from __future__ import annotations

import email
import hashlib
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import feedparser
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner, Result
from conftest import write_config

from syndicator import clock
from syndicator import config as config_mod
from syndicator.cli import main
from syndicator.digest import default_day, refresh_digests, run_digest
from syndicator.errors import EmailError
from syndicator.render.digest import day_bounds
from syndicator.storage.engine import open_database
from syndicator.storage.repo import FileState, ItemChange, Repository
from syndicator.types import Article, article_id

# the local test server takes AUTH without TLS on purpose (plain SMTP on 127.0.0.1)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
DAY = date(2024, 5, 1)
NOW = datetime(2024, 5, 2, 1, 0, tzinfo=UTC)  # 09:00 on 2024-05-02 in Shanghai


def local(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def article(key: str, published: datetime, *, body: str | None = None, channel: str = "重庆频道",
            source: str = "s", tags: tuple[str, ...] = ("安全生产",), title: str | None = None) -> Article:
    text = body or f"正文 {key}。"
    return Article(
        source=source, key=key, id=article_id(source, key), title=title or f"新闻 {key}", original_title=None,
        channel=channel, published=published, updated=None, date_source="front_matter", author=None,
        submitter=None, summary=text[:40], content_html=f"<p>{text}</p>", content_text=text, link=None,
        source_path=key, tags=tags, content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )


def save(repo: Repository, source: str, *articles: Article) -> None:
    repo.save_batch(source, [ItemChange(a.key, FileState(1, 1, a.content_hash), a) for a in articles])


@pytest.fixture(autouse=True)
def fixed_clock() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.set_now(None)


@pytest.fixture
def repo(db_url: str) -> Repository:
    r = Repository(open_database(db_url))
    for name in ("s", "t", "u"):
        r.ensure_source(name, "archive", f"/{name}")
    return r


def make_settings(tmp_path: Path, db_url: str, **digest: Any) -> config_mod.Settings:
    return config_mod.from_mapping(
        {"site": {"title": "重庆新闻", "base_url": "http://news.example.org/", "timezone": "Asia/Shanghai"},
         "database": {"url": db_url}, "output": {"dir": str(tmp_path / "out")}, "digest": digest},
        base=tmp_path,
    )


def test_day_boundaries_23_59_and_00_30_local(repo: Repository) -> None:
    save(repo, "s",
         article("a", local(DAY, 0, 30)),  # 2024-04-30 16:30 UTC: still 2024-05-01 locally
         article("b", local(DAY, 23, 59)),
         article("c", local(DAY + timedelta(days=1), 0, 30)),
         article("d", local(DAY - timedelta(days=1), 23, 59)))
    start, end = day_bounds(DAY, "Asia/Shanghai")
    titles = [e.title for e in repo.stories_published_between(start, end, "http://x/")]
    assert titles == ["新闻 b", "新闻 a"]


def test_three_channels_one_story_in_the_digest(tmp_path: Path, db_url: str, repo: Repository) -> None:
    # long enough for the near-duplicate rules to call it one story under three headlines
    body = "".join(f"同一条新闻的正文第{i}句，被三个频道同时刊发，第{i * 13}项内容各不相同。" for i in range(20))
    save(repo, "s", article("a", local(DAY, 9, 0), body=body, channel="重庆频道"))
    save(repo, "t", article("b", local(DAY, 9, 5), body=body, channel="河南频道"))
    save(repo, "u", article("c", local(DAY, 9, 7), body=body, channel="四川频道"))
    save(repo, "s", article("d", local(DAY, 10, 0)))
    settings = make_settings(tmp_path, db_url)
    result = run_digest(settings, repo, DAY, email=False)
    assert (result.stories, result.path, result.email) == (2, "digest/2024-05-01.html", "not-requested")
    page = (settings.output.dir / "digest/2024-05-01.html").read_text("utf-8")
    assert page.count("新闻 a") == 1 and "新闻 b" not in page and "新闻 c" not in page
    assert "重庆频道、河南频道、四川频道" in page and "3 个频道刊发" in page
    assert page.index("要闻") < page.index("新闻 a") < page.index("新闻 d")  # the top story first
    md = (settings.output.dir / "digest/2024-05-01.md").read_text("utf-8")
    assert md.count("新闻 a") == 1 and "重庆频道、河南频道、四川频道" in md
    index = (settings.output.dir / "index.html").read_text("utf-8")
    assert 'href="digest/2024-05-01.html"' in index and "digest.atom" in index
    assert (settings.output.dir / "digest/index.html").exists()


def _entries(out: Path) -> dict[str, str]:
    parsed = feedparser.parse((out / "digest.atom").read_bytes())
    assert parsed.bozo == 0
    return {e.id.rsplit(":", 1)[1]: e.updated for e in parsed.entries}


def test_updated_moves_only_when_the_days_stories_change(tmp_path: Path, db_url: str, repo: Repository) -> None:
    settings = make_settings(tmp_path, db_url)
    out = settings.output.dir
    save(repo, "s", article("a", local(DAY, 9, 0)), article("b", local(DAY, 11, 0)))
    run_digest(settings, repo, DAY, email=False)
    first = _entries(out)
    assert first == {"2024-05-01": "2024-05-01T03:00:00+00:00"}  # the newest story's date, not the build time
    atom = (out / "digest.atom").read_bytes()
    mtime = (out / "digest.atom").stat().st_mtime_ns
    assert run_digest(settings, repo, DAY, email=False).files_written == 0  # nothing changed: nothing written
    assert (out / "digest.atom").read_bytes() == atom and (out / "digest.atom").stat().st_mtime_ns == mtime
    # another day gets a story: 2024-05-01 keeps its updated, the new day gets an entry
    clock.set_now(lambda: NOW + timedelta(hours=1))
    save(repo, "s", article("c", local(DAY + timedelta(days=1), 8, 0)))
    refresh_digests(settings, repo)
    second = _entries(out)
    assert second["2024-05-01"] == first["2024-05-01"] and "2024-05-02" in second
    # a story of the day changes: only that day's updated moves
    clock.set_now(lambda: NOW + timedelta(hours=2))
    save(repo, "s", replace(article("a", local(DAY, 9, 0)), content_text="改过的正文。", content_hash="x"))
    refresh_digests(settings, repo)
    third = _entries(out)
    assert third["2024-05-01"] == "2024-05-02T03:00:00+00:00" and third["2024-05-02"] == second["2024-05-02"]
    # the day loses its stories: no entry, no page
    repo.save_batch("s", [], deleted=["a", "b"])
    refresh_digests(settings, repo)
    assert "2024-05-01" not in _entries(out) and not (out / "digest/2024-05-01.html").exists()


def test_day_without_stories_has_no_page(tmp_path: Path, db_url: str, repo: Repository) -> None:
    settings = make_settings(tmp_path, db_url)
    result = run_digest(settings, repo, DAY, email=False)
    assert (result.stories, result.path) == (0, None)
    assert not (settings.output.dir / "digest/2024-05-01.html").exists()
    assert feedparser.parse((settings.output.dir / "digest.atom").read_bytes()).entries == []


def test_default_day_is_the_previous_local_day(tmp_path: Path) -> None:
    s = make_settings(tmp_path, "sqlite:///x.db")
    assert default_day(s, datetime(2024, 5, 1, 16, 30, tzinfo=UTC)) == date(2024, 5, 2) - timedelta(days=1)
    assert default_day(s, datetime(2024, 5, 1, 15, 59, tzinfo=UTC)) == date(2024, 4, 30)
    cur = make_settings(tmp_path, "sqlite:///x.db", day="current")
    assert default_day(cur, datetime(2024, 5, 1, 16, 30, tzinfo=UTC)) == date(2024, 5, 2)


# -- e-mail against a real SMTP server ---------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        self.tls.append(session.ssl is not None)
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"editor" and data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port, authenticator=authenticator,
                     auth_required=True, auth_require_tls=False)
    ctl.start()
    try:
        yield sink, port
    finally:
        ctl.stop()


def mail_settings(tmp_path: Path, db_url: str, port: int) -> config_mod.Settings:
    return make_settings(tmp_path, db_url, email={
        "enabled": True, "to": ["desk@example.org", "chief@example.org"], "sender": "digest@example.org",
        "host": "127.0.0.1", "port": port, "starttls": False, "timeout": "10s"})


def test_email_sent_once_with_text_and_html(tmp_path: Path, db_url: str, repo: Repository,
                                            smtp: tuple[Sink, int], monkeypatch: pytest.MonkeyPatch) -> None:
    sink, port = smtp
    monkeypatch.setenv("SYNDICATOR_SMTP_USERNAME", "editor")
    monkeypatch.setenv("SYNDICATOR_SMTP_PASSWORD", "s3cret")
    save(repo, "s", article("a", local(DAY, 0, 30), title="零点半的新闻"), article("b", local(DAY, 23, 59)))
    settings = mail_settings(tmp_path, db_url, port)
    assert run_digest(settings, repo, DAY, email=True).email == "sent"
    assert len(sink.messages) == 1
    sender, rcpts, raw = sink.messages[0]
    assert sender == "digest@example.org" and sorted(rcpts) == ["chief@example.org", "desk@example.org"]
    msg = email.message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts: dict[str, Message] = {p.get_content_type(): p for p in msg.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    text = parts["text/plain"].get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    html = parts["text/html"].get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    assert "零点半的新闻" in text and "零点半的新闻" in html and "<!DOCTYPE html>" in html
    hrefs = re.findall(r'href="([^"#]*)"', html)
    assert hrefs and all(h.startswith("http://news.example.org/") for h in hrefs), hrefs  # read away from the site
    subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
    assert subject == "重庆新闻 每日摘要 2024-05-01（2 篇）"
    # the same run again, and a "restart" (a new repository on the same database): never a second e-mail
    assert run_digest(settings, repo, DAY, email=True).email == "already-sent"
    restarted = Repository(open_database(settings.database.url))
    assert run_digest(settings, restarted, DAY, email=True).email == "already-sent"
    assert len(sink.messages) == 1


def test_email_failure_leaves_the_day_unsent(tmp_path: Path, db_url: str, repo: Repository,
                                             smtp: tuple[Sink, int], monkeypatch: pytest.MonkeyPatch) -> None:
    sink, port = smtp
    save(repo, "s", article("a", local(DAY, 9, 0)))
    monkeypatch.setenv("SYNDICATOR_SMTP_USERNAME", "editor")
    monkeypatch.setenv("SYNDICATOR_SMTP_PASSWORD", "wrong")
    settings = mail_settings(tmp_path, db_url, port)
    with pytest.raises(EmailError, match=f"smtp://127.0.0.1:{port}: .*Authentication"):
        run_digest(settings, repo, DAY, email=True)
    down = mail_settings(tmp_path, db_url, free_port())
    with pytest.raises(EmailError):
        run_digest(down, repo, DAY, email=True)
    monkeypatch.setenv("SYNDICATOR_SMTP_PASSWORD", "s3cret")
    assert run_digest(settings, repo, DAY, email=True).email == "sent"
    assert len(sink.messages) == 1


def test_email_over_starttls_with_login(tmp_path: Path, db_url: str, repo: Repository,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that requires STARTTLS before AUTH, with a certificate from a private CA (``ca_file``)."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    sink, port = Sink(), free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_required=True,
                     tls_context=server_ctx, require_starttls=True)
    ctl.start()
    try:
        monkeypatch.setenv("SYNDICATOR_SMTP_USERNAME", "editor")
        monkeypatch.setenv("SYNDICATOR_SMTP_PASSWORD", "s3cret")
        save(repo, "s", article("a", local(DAY, 9, 0)))
        settings = make_settings(tmp_path, db_url, email={
            "to": ["desk@example.org"], "host": "127.0.0.1", "port": port, "starttls": True,
            "ca_file": "ca.pem"})  # relative to the config folder
        assert settings.digest.email.ca_file == tmp_path / "ca.pem"
        untrusted = make_settings(tmp_path, db_url, email={
            "to": ["desk@example.org"], "host": "127.0.0.1", "port": port, "starttls": True})
        with pytest.raises(EmailError, match="CERTIFICATE_VERIFY_FAILED"):
            run_digest(untrusted, repo, DAY, email=True)
        assert run_digest(settings, repo, DAY, email=True).email == "sent"
        assert sink.tls == [True] and len(sink.messages) == 1
    finally:
        ctl.stop()


# -- the command ----------------------------------------------------------------------------------------


def cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def test_cli_digest(tmp_path: Path, archive: Path) -> None:
    config = write_config(tmp_path, archive)
    assert cli(config, "sync").exit_code == 0
    done = cli(config, "digest", "--date", "2019-02-25")
    assert done.exit_code == 0, done.stderr
    assert "digest 2019-02-25: stories=1 → digest/2019-02-25.html" in done.stdout
    out = tmp_path / "feeds"
    assert (out / "digest/2019-02-25.html").exists() and (out / "digest/2019-02-25.md").exists()
    assert "stories=0" in cli(config, "digest", "--date", "2019-02-26").stdout
    bad = cli(config, "digest", "--date", "25.02.2019")
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.stderr
    assert "digest:   daily at 07:00 Asia/Shanghai (previous day), e-mail off" in cli(config, "check-config").output
    no_rcpt = cli(config, "digest", "--date", "2019-02-25", "--email")
    assert no_rcpt.exit_code == 2 and "digest.email.to" in no_rcpt.stderr


def test_sync_keeps_digests_and_tag_pages_in_step(tmp_path: Path, archive: Path) -> None:
    config = write_config(tmp_path, archive)
    out = tmp_path / "feeds"
    assert cli(config, "sync").exit_code == 0
    assert (out / "digest/2019-02-25.html").exists() and (out / "tags/an-quan-sheng-chan.html").exists()
    seed = next(archive.iterdir()).read_text(encoding="utf-8")
    front = seed.split("---", 2)[1]  # another story (its own text) two days later, same tags
    front = front.replace("date: 2019-02-25- 06:24", "date: 2019-02-27- 00:30").replace(
        "title: 重庆市应急系统扎实推进安全生产形势持续稳定好转_重庆频道", "title: 两天后的新闻_重庆频道")
    body = "\n\n".join(f"两天后的安全生产检查第{i}段：第{i * 7}号企业复产复工情况良好。" for i in range(12))
    later = f"---{front}---\n{body}\n"
    (archive / "later.md").write_text(later, encoding="utf-8")
    before = (out / "digest/2019-02-25.html").stat().st_mtime_ns
    assert cli(config, "sync").exit_code == 0
    assert "两天后的新闻" in (out / "digest/2019-02-27.html").read_text("utf-8")
    assert 'href="2019-02-27.html"' in (out / "digest/2019-02-25.html").read_text("utf-8")  # its "next day" link
    assert (out / "digest/2019-02-25.html").stat().st_mtime_ns != before
    assert 'href="digest/2019-02-27.html"' in (out / "index.html").read_text("utf-8")
    assert "两天后的新闻" in (out / "tags/an-quan-sheng-chan.html").read_text("utf-8")
    days = [e.id for e in feedparser.parse((out / "digest.atom").read_bytes()).entries]
    assert days == ["urn:syndicator:digest:2019-02-27", "urn:syndicator:digest:2019-02-25"]
    # withdrawn: the file goes, so do its day's page and feed entry; the other day stays
    (archive / "later.md").unlink()
    assert cli(config, "sync").exit_code == 0
    assert not (out / "digest/2019-02-27.html").exists() and (out / "digest/2019-02-25.html").exists()
    assert "2019-02-27" not in (out / "digest/index.html").read_text("utf-8")
    assert "2019-02-27" not in (out / "digest/2019-02-25.html").read_text("utf-8")  # no link to a vanished day


def test_cli_digest_renders_only_the_day_and_the_front_page(tmp_path: Path, archive: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The daily digest reads the digest records instead of every story's stamps, and leaves tag pages alone
    (their links to a story's day do not depend on the digests made): at 100,000 stories it took ~5 s."""
    import syndicator.digest as digest_mod
    import syndicator.publish as publish_mod

    config = write_config(tmp_path, archive)
    assert cli(config, "sync").exit_code == 0
    out = tmp_path / "feeds"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    tag_pages: list[str] = []
    real = publish_mod.render_tag_page
    monkeypatch.setattr(publish_mod, "render_tag_page", lambda *a, **k: tag_pages.append("x") or real(*a, **k))
    monkeypatch.setattr(digest_mod, "_all_days", lambda *a: pytest.fail("every story's stamps were read"))
    done = cli(config, "digest", "--date", "2019-02-25")
    assert "digest 2019-02-25: stories=1 → digest/2019-02-25.html files_written=0" in done.stdout
    assert tag_pages == []
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / "tags/an-quan-sheng-chan.html").unlink()  # a missing tag page is written again
    assert cli(config, "digest", "--date", "2019-02-25").exit_code == 0
    assert (out / "tags/an-quan-sheng-chan.html").read_bytes() == before[out / "tags/an-quan-sheng-chan.html"]

"""The service's daily digest job: local trigger time, catch-up after a late start, e-mail once."""

from __future__ import annotations

import email
import email.header
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from apscheduler.schedulers.background import BackgroundScheduler
from conftest import write_config

from syndicator import clock
from syndicator.config import Settings, load
from syndicator.scheduler import DigestJob, Ticker, add_digest_job, digest_missed, digest_trigger
from syndicator.storage import locks
from syndicator.storage.engine import open_database
from syndicator.storage.repo import Repository
from syndicator.sync import sync

from .helpers import free_port

# 2019-02-26 08:00 in Shanghai: the day after the seed's day, after digest.time (07:00)
MORNING = datetime(2019, 2, 26, 0, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    sink, port = Sink(), free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield sink, port
    finally:
        ctl.stop()


@pytest.fixture
def frozen() -> Iterator[list[datetime]]:
    now = [MORNING]
    clock.set_now(lambda: now[0])
    yield now
    clock.set_now(None)


def settings_for(tmp_path: Path, archive: Path, db_url: str, port: int = 25, **digest: Any) -> Settings:
    email = {"enabled": True, "to": ["desk@example.org"], "host": "127.0.0.1", "port": port, "starttls": False}
    return load(write_config(tmp_path, archive, db_url=db_url, digest={"time": "07:00", "email": email, **digest}))


def test_trigger_is_local_time_and_missed_means_after_it(tmp_path: Path, archive: Path) -> None:
    s = settings_for(tmp_path, archive, "sqlite:///x.db")
    fire = digest_trigger(s).get_next_fire_time(None, datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
    assert fire is not None and fire.astimezone(UTC) == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # 07:00 +08:00
    assert not digest_missed(s, datetime(2026, 3, 1, 22, 59, tzinfo=UTC))  # 06:59 local
    assert digest_missed(s, datetime(2026, 3, 1, 23, 0, tzinfo=UTC))  # 07:00 local


def test_job_makes_and_mails_the_previous_day_once(tmp_path: Path, archive: Path, db_url: str,
                                                   smtp: tuple[Sink, int], frozen: list[datetime]) -> None:
    sink, port = smtp
    s = settings_for(tmp_path, archive, db_url, port)
    repo = Repository(open_database(s.database.url))
    sync(s, repo)
    job = DigestJob(s, repo, threading.Event())
    job.run()
    assert (s.output.dir / "digest/2019-02-25.html").exists() and len(sink.messages) == 1
    subject = email.message_from_bytes(sink.messages[0])["Subject"]
    assert "2019-02-25" in str(email.header.make_header(email.header.decode_header(subject)))
    job.run()  # the same day again (a second trigger, a restart's catch-up): no second e-mail
    DigestJob(s, Repository(open_database(s.database.url)), threading.Event()).run()
    assert len(sink.messages) == 1


def test_job_waits_for_the_writers_turn(tmp_path: Path, archive: Path, smtp: tuple[Sink, int],
                                        frozen: list[datetime]) -> None:
    sink, port = smtp
    s = settings_for(tmp_path, archive, f"sqlite:///{tmp_path / 'db.sqlite'}", port)
    repo = Repository(open_database(s.database.url))
    sync(s, repo)
    held = locks.acquire(repo.engine, locks.SYNC_LOCK)
    thread = threading.Thread(target=DigestJob(s, repo, threading.Event()).run)
    thread.start()
    thread.join(timeout=2.5)
    assert thread.is_alive() and not sink.messages  # waiting while a sync holds the turn
    held.release()
    thread.join(timeout=30)
    assert not thread.is_alive() and len(sink.messages) == 1


@pytest.mark.parametrize(("now", "catch_up"), [(MORNING, True), (datetime(2019, 2, 25, 22, 0, tzinfo=UTC), False)])
def test_service_schedules_the_job_and_catches_up_after_a_late_start(
    tmp_path: Path, archive: Path, frozen: list[datetime], now: datetime, catch_up: bool
) -> None:
    frozen[0] = now
    s = settings_for(tmp_path, archive, f"sqlite:///{tmp_path / 'db.sqlite'}")
    scheduler = BackgroundScheduler(timezone="UTC")
    add_digest_job(scheduler, Ticker(s, Repository(open_database(s.database.url)), threading.Event()))
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job("digest")
        assert job is not None
        if catch_up:
            assert job.next_run_time == now  # at once
        else:
            expected = digest_trigger(s).get_next_fire_time(None, datetime.now(UTC))
            assert job.next_run_time == expected
    finally:
        scheduler.shutdown(wait=False)
    off = load(write_config(tmp_path, archive, digest={"enabled": False}))
    quiet = BackgroundScheduler(timezone="UTC")
    add_digest_job(quiet, Ticker(off, Repository(open_database(s.database.url)), threading.Event()))
    assert quiet.get_jobs() == []

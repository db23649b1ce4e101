"""A part of the work run in a forked copy of the process: its count comes back, its failure is an error."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from conftest import another_thread_running

from syndicator import forked
from syndicator.errors import RenderError


def test_a_forked_part_returns_its_count(tmp_path) -> None:
    marker = tmp_path / "written-by-the-copy"

    def work() -> int:
        marker.write_text(str(os.getpid()))
        return 42

    part = forked.start(work, "the test part")
    assert part.result() == 42 and part.result() == 42
    assert int(marker.read_text()) != os.getpid()  # it ran in another process


def test_a_failing_part_is_an_error_naming_it() -> None:
    def work() -> int:
        raise RenderError("cannot write: No space left on device", path="articles/x.html")

    with pytest.raises(RenderError, match=r"the test part failed: .*No space left on device"):
        forked.start(work, "the test part").result()

    def crash() -> int:
        raise ValueError("boom")

    with pytest.raises(RenderError, match=r"the test part failed: ValueError: boom"):
        forked.start(crash, "the test part").result()


def test_a_killed_part_is_an_error() -> None:
    def work() -> int:
        os.kill(os.getpid(), signal.SIGKILL)
        return 1

    with pytest.raises(RenderError, match=r"killed by signal 9"):
        forked.start(work, "the test part").result()


def test_not_available_while_another_thread_runs() -> None:
    assert forked.available(), f"threads left running by earlier tests: {threading.enumerate()}"
    with another_thread_running():
        assert not forked.available()
        with pytest.raises(RuntimeError):
            forked.start(lambda: 1, "the test part")
    assert forked.available()


def test_the_collector_is_frozen_while_the_copy_runs_and_thawed_after() -> None:
    """The parent keeps its objects frozen for the collector while the copy shares its pages (a full
    collection would write to all of them), and collects as before once the copy is done."""
    import gc

    assert gc.get_freeze_count() == 0
    part = forked.start(lambda: 7, "the test part")
    assert gc.get_freeze_count() > 0
    assert part.result() == 7
    assert gc.get_freeze_count() == 0


def test_claims_are_handed_out_once_each_to_the_copy_and_its_parent(tmp_path) -> None:
    import time

    claims = forked.Claims(300)
    theirs = tmp_path / "claimed-by-the-copy"

    def work() -> int:
        got = []
        while (n := claims.next()) is not None:
            got.append(n)
            time.sleep(0.001)
        theirs.write_text(",".join(map(str, got)))
        return len(got)

    part = forked.start(work, "the test part")
    mine = []
    while (n := claims.next()) is not None:
        mine.append(n)
        time.sleep(0.001)
    counted = part.result()
    copy = [int(x) for x in theirs.read_text().split(",") if x]
    assert counted == len(copy)
    assert sorted(mine + copy) == list(range(300))  # each number once, none lost
    assert mine and copy  # both took part
    assert claims.next() is None

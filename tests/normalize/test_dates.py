"""Every date shape of the corpus, and fields that hold no date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from syndicator.normalize.dates import find_body_date, parse_date

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-02-24- 22:08", datetime(2019, 2, 24, 22, 8, tzinfo=CST)),
        ("2019-02-25- 06:24", datetime(2019, 2, 25, 6, 24, tzinfo=CST)),
        ("2019-01-16 16:21:19", datetime(2019, 1, 16, 16, 21, 19, tzinfo=CST)),
        ("2019-01-16- 16:21:19", datetime(2019, 1, 16, 16, 21, 19, tzinfo=CST)),
        ("2019.02.21 16:48", datetime(2019, 2, 21, 16, 48, tzinfo=CST)),
        ("2019年3月2日 14:30", datetime(2019, 3, 2, 14, 30, tzinfo=CST)),
        ("2019/3/5 9:00", datetime(2019, 3, 5, 9, 0, tzinfo=CST)),
        ("         2019-02-18- 08:05:00        ", datetime(2019, 2, 18, 8, 5, tzinfo=CST)),
        ("2019-02-18", datetime(2019, 2, 18, tzinfo=CST)),
        ("2019-02-18T08:05:00Z", datetime(2019, 2, 18, 8, 5, tzinfo=UTC)),
        ("2019-02-18 08:05:00+01:00", datetime(2019, 2, 18, 7, 5, tzinfo=UTC)),
    ],
)
def test_shapes(text: str, expected: datetime) -> None:
    got = parse_date(text, "Asia/Shanghai")
    assert got == expected
    assert got is not None and got.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "楼盘价格 : ",
        "238RMB",
        "团购时间：",
        "",
        "   ",
        "待售",
        "9",
        "K5 PHEV",
        "2019-13-45 10:00",
        "2019-02-30",
        "评论",
    ],
)
def test_no_date(text: str) -> None:
    assert parse_date(text, "Asia/Shanghai") is None


def test_yaml_objects() -> None:
    assert parse_date(datetime(2019, 1, 16, 16, 21, 19), "Asia/Shanghai") == datetime(
        2019, 1, 16, 8, 21, 19, tzinfo=UTC
    )
    assert parse_date(datetime(2019, 1, 16, 16, 21, tzinfo=UTC), "Asia/Shanghai") == datetime(
        2019, 1, 16, 16, 21, tzinfo=UTC
    )
    assert parse_date(date(2019, 1, 16), "Asia/Shanghai") == datetime(2019, 1, 15, 16, tzinfo=UTC)
    assert parse_date(20190116, "Asia/Shanghai") is None
    assert parse_date(None, "Asia/Shanghai") is None


def test_unknown_timezone_falls_back_to_utc() -> None:
    assert parse_date("2019-01-16 16:21", "Not/AZone") == datetime(2019, 1, 16, 16, 21, tzinfo=UTC)


def test_body_date() -> None:
    # real openings from the corpus
    assert find_body_date("来源：中安在线\n\n2019-02-22 第697期\n\n2月20日上午", "Asia/Shanghai") == datetime(
        2019, 2, 22, tzinfo=CST
    )
    assert find_body_date("2019年2月10日,记者航拍济南中央商务区建设进展。", "Asia/Shanghai") == datetime(
        2019, 2, 10, tzinfo=CST
    )
    # an event's date is not the article's date
    assert (
        find_body_date("新的南京市《积分落户实施办法》将于2019年3月1日起正式实施。", "Asia/Shanghai") is None
    )
    assert (
        find_body_date("2月18日，中共中央、国务院印发了《粤港澳大湾区发展规划纲要》", "Asia/Shanghai") is None
    )

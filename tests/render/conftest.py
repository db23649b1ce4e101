"""Shared values for the render tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syndicator.types import Carrier, FeedSpec, SiteInfo, StoryEntry, Tag

BASE = "https://news.example.org/"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def site() -> SiteInfo:
    return SiteInfo(
        title="重庆新闻",
        base_url=BASE,
        language="zh-CN",
        timezone="Asia/Shanghai",
        description="本地新闻汇总",
    )


def make_entry(n: int, **over: object) -> StoryEntry:
    values: dict[str, object] = {
        "story_id": f"{n:016x}",
        "title": f"新闻标题 {n}",
        "link": f"{BASE}articles/{n:016x}.html",
        "published": T0 - timedelta(hours=n),
        "updated": T0 - timedelta(hours=n) + timedelta(minutes=30),
        "author": "张三",
        "summary": f"摘要 {n}",
        "content_html": f"<p>正文 {n}</p>",
        "tags": (Tag("时政", "shizheng"), Tag("重庆", "chongqing")),
        "channel": "cq",
        "also_in": (),
    }
    values.update(over)
    return StoryEntry(**values)  # type: ignore[arg-type]


@pytest.fixture
def entries() -> tuple[StoryEntry, ...]:
    return (
        make_entry(0, also_in=(Carrier("重庆频道", "https://cq.example.org/a/1"), Carrier("晚报", None))),
        make_entry(1, author=None, tags=()),
        make_entry(2),
    )


@pytest.fixture
def spec(entries: tuple[StoryEntry, ...]) -> FeedSpec:
    return FeedSpec(path="all", title="全部新闻", description="所有频道", entries=entries)


@pytest.fixture
def tag_spec(entries: tuple[StoryEntry, ...]) -> FeedSpec:
    tag = Tag("时政", "shizheng")
    return FeedSpec(path="tags/shizheng", title="时政", description="", entries=entries, tag=tag)

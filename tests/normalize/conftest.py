"""Shared fixtures for the normalization tests: the repo's config, a RawItem builder, the corpus path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from syndicator.config import NormalizeSettings, Settings, TagSettings, load
from syndicator.types import RawItem

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "normalize"
CORPUS = REPO / ".." / "shared" / "corpus"
MTIME = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load(REPO / "config.yaml")


@pytest.fixture(scope="session")
def rules(settings: Settings) -> NormalizeSettings:
    return settings.normalize


@pytest.fixture(scope="session")
def tags(settings: Settings) -> TagSettings:
    return settings.tags


def raw_file(data: bytes | str, path: str = "post.md", tz: str = "Asia/Shanghai") -> RawItem:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return RawItem(source="test", key=path, timezone=tz, data=data, path=path, mtime=MTIME)

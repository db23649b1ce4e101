"""The `digest:` config section: defaults, and one clear line for each bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syndicator import config as config_mod
from syndicator.errors import ConfigError


def load(tmp_path: Path, digest: dict[str, Any]) -> config_mod.Settings:
    return config_mod.from_mapping({"digest": digest}, base=tmp_path, path=tmp_path / "config.yaml")


def test_defaults(tmp_path: Path) -> None:
    d = load(tmp_path, {}).digest
    assert (d.time, d.day, d.top_stories, d.email.enabled) == ("07:00", "previous", 5, False)
    assert load(tmp_path, {"time": "6:05"}).digest.hour_minute == (6, 5)


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ({"time": "25:00"}, "digest.time: not a local time '25:00'"),
        ({"day": "tomorrow"}, "digest.day: bad value 'tomorrow'"),
        ({"top_stories": -1}, "digest.top_stories"),
        ({"colour": "red"}, "digest.colour: unknown key (allowed: enabled, time, day"),
        ({"email": {"enabled": True}}, "digest.email: email is enabled but `to` lists no recipient"),
        ({"email": {"ssl": True}}, "choose one of `ssl`"),
        ({"email": {"subject": "{nope}"}}, "bad subject template"),
        ({"email": {"timeout": "soon"}}, "digest.email.timeout: not a duration"),
    ],
)
def test_bad_values_are_one_line(tmp_path: Path, digest: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, digest)
    text = str(info.value)
    assert "\n" not in text and message in text and str(tmp_path / "config.yaml") in text


def test_credentials_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    email = load(tmp_path, {"email": {"username": "file-user"}}).digest.email
    monkeypatch.delenv("SYNDICATOR_SMTP_USERNAME", raising=False)
    monkeypatch.delenv("SYNDICATOR_SMTP_PASSWORD", raising=False)
    assert email.credentials() is None
    monkeypatch.setenv("SYNDICATOR_SMTP_PASSWORD", "pw")
    assert email.credentials() == ("file-user", "pw")
    monkeypatch.setenv("SYNDICATOR_SMTP_USERNAME", "env-user")
    assert email.credentials() == ("env-user", "pw")

"""Config of remote sources: one-line errors naming the key, defaults merged per source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syndicator.config import from_mapping
from syndicator.errors import ConfigError


def load(tmp_path: Path, source: dict[str, Any], **top: Any) -> Any:
    return from_mapping({"sources": [{"name": "s", **source}], **top}, base=tmp_path)


@pytest.mark.parametrize(("source", "top", "message"), [
    ({"type": "feed"}, {}, "of type feed needs `url`"),
    ({"type": "feed", "url": "file:///etc/passwd"}, {}, "sources[0].url: must be an http:// or https:// URL"),
    ({"type": "html", "url": "https://x.example/"}, {}, "needs `selectors` (item, title, link)"),
    ({"type": "html", "url": "https://x.example/", "selectors": {"item": "li"}}, {}, "sources[0].selectors.title"),
    ({"type": "feed", "url": "https://x.example/", "auth": {"password_env": "P"}}, {},
     "auth needs exactly one of `username` or `username_env`"),
    ({"type": "feed", "url": "https://x.example/", "min_interval": "soon"}, {}, "not a duration"),
    ({"type": "feed", "url": "https://x.example/", "retries": 3}, {}, "sources[0].retries: unknown key"),
    ({"type": "feed", "url": "https://x.example/"}, {"http": {"max_redirects": 9}}, "http.max_redirects"),
    ({"type": "feed", "url": "https://x.example/"}, {"http": {"allow_networks": ["10.0.0.0/33"]}},
     "not a network: '10.0.0.0/33'"),
])
def test_bad_remote_config_is_one_line(tmp_path: Path, source: dict[str, Any], top: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, source, **top)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_remote_source_config(tmp_path: Path) -> None:
    s = load(tmp_path, {"type": "html", "url": "https://x.example/list", "verify": False,
                        "selectors": {"item": "li", "title": "a", "link": "a", "content": "#c", "remove": [".ad"]}},
             allow_private_networks=True, http={"user_agent": "Newsroom/2"})
    src = s.sources[0]
    assert src.selectors is not None and src.selectors.remove == [".ad"] and src.verify is False
    assert s.allow_private_networks and s.http.user_agent == "Newsroom/2" and s.http.max_redirects == 5

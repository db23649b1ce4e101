"""Helpers for the service tests: posts, free ports, waiting, HTTP and a `syndicator run` subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
TAG = "服务测试"


def write_post(folder: Path, n: int, title: str | None = None, tag: str = TAG) -> str:
    """A small post in the archive's format, with a body of its own (no two posts are duplicates)."""
    title = title or f"第{n}号测试新闻：城市更新项目进展顺利"
    body = "\n".join(
        f"这是第{n}篇测试稿件的第{i}段，记者在现场看到第{n * 7 + i}号工地正在施工，项目编号{n:04d}-{i}。"
        for i in range(1, 5)
    )
    text = (
        f"---\ntitle: {title}_重庆频道\nauthor: wetech\ndate: 2019-03-{1 + n % 27:02d} 10:{n % 60:02d}\n"
        f"tags: [{tag}]\ncategories: \n---\n{body}\n"
    )
    tmp = folder / f".{n:05d}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.rename(folder / f"{n:05d}.md")  # the scraper's files appear whole
    return title


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T], timeout: float = 15.0, step: float = 0.1, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError):
            last = None
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    """(status, body, headers); the headers are case-insensitive (``headers["etag"]``)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def cli(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`syndicator --config CONFIG ARGS…` as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "syndicator", "--config", str(config), *args],
        capture_output=True, text=True, timeout=timeout, env=_env(),
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SYNDICATOR_CONFIG", None)
    env.pop("SYNDICATOR_DATABASE_URL", None)
    return env


class Service:
    """A real `syndicator run` process; its stderr goes to a file the test can read."""

    def __init__(self, config: Path, *args: str, name: str = "run") -> None:
        self.log = config.parent / f"{name}.log"
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syndicator", "--config", str(config), "run", *args],
            stdout=subprocess.DEVNULL, stderr=self._fh, stdin=subprocess.DEVNULL, env=_env(),
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_started(self, base: str, timeout: float = 20.0) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"run exited with {self.proc.returncode}:\n{self.text()}")
            return http_get(base + "healthz")[0] in (200, 503)

        wait_for(up, timeout, what="the service to answer /healthz")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Send ``sig``; returns (exit code, seconds it took to exit)."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            self.close()
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._fh.close()


def healthz(base: str) -> tuple[int, dict[str, Any]]:
    code, body, _ = http_get(base + "healthz")
    return code, json.loads(body)


def metric(base: str, name: str, **labels: str) -> float | None:
    """One sample's value from /metrics (None when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    _, body, _ = http_get(base + "metrics")
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None

"""Command line: a thin layer over sync, publish, storage and the server. No logic of its own.

Exit codes scripts can trust: 0 all good, 1 some source or file failed, 2 bad configuration or usage.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from . import config as config_mod
from .errors import ConfigError, StorageError, SyndicatorError

log = logging.getLogger("syndicator")


def setup_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    """Logs go to stderr; human-readable by default."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("alembic", "waitress", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


class Ctx:
    """Lazily loaded settings and repository, shared by the commands."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._settings: config_mod.Settings | None = None
        self._repo: Any = None

    @property
    def settings(self) -> config_mod.Settings:
        if self._settings is None:
            self._settings = config_mod.load(self.config_path)
        return self._settings

    @property
    def repo(self) -> Any:
        if self._repo is None:
            from .storage.engine import open_database
            from .storage.repo import Repository

            self._repo = Repository(open_database(self.settings.database.url))
        return self._repo


def _fail(exc: SyndicatorError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2 if isinstance(exc, ConfigError) else 1)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn typed errors into one line on stderr and the documented exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ConfigError, StorageError, SyndicatorError) as exc:
            _fail(exc)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    wrapper.__click_params__ = getattr(func, "__click_params__", [])  # type: ignore[attr-defined]
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", metavar="PATH", envvar="SYNDICATOR_CONFIG",
              help="Config file (default ./config.yaml; also $SYNDICATOR_CONFIG).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors.")
@click.version_option(__version__, prog_name="syndicator")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool, quiet: bool) -> None:
    """syndicator: turn news archives and feeds into clean, deduplicated per-tag RSS/Atom feeds.

    \b
    Typical use:
      syndicator sync                 read every source, store articles, write feeds/
      syndicator serve                serve feeds/ at http://127.0.0.1:8080/
      syndicator articles --json      what is stored, one JSON object per line
    Every command reads config.yaml (or --config PATH / $SYNDICATOR_CONFIG).
    Exit codes: 0 ok, 1 a source or file failed, 2 bad config or usage.
    """
    setup_logging(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    ctx.obj = Ctx(config_path)


@main.command()
@click.option("--source", "names", multiple=True, metavar="NAME", help="Only this source (repeatable).")
@click.option("--full", is_flag=True, help="Re-read and re-process every file, not just changed ones.")
@click.option("--no-progress", is_flag=True, help="No progress bar even on a terminal.")
@click.pass_obj
@handles_errors
def sync(obj: Ctx, names: tuple[str, ...], full: bool, no_progress: bool) -> None:
    """Read sources, store new and changed articles, re-render the feeds they touch.

    Prints one summary line at the end. Exit 1 when any source or file failed (the rest is still stored).
    """
    from .sync import sync as run_sync

    settings, repo = obj.settings, obj.repo
    if sys.stderr.isatty() and not no_progress:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} files"),
                      TimeElapsedColumn(), transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(name: str, done: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(f"syncing {name}", total=None)
                bar.update(tasks[name], completed=done)

            report, _ = run_sync(settings, repo, names=names, full=full, progress=progress)
    else:
        report, _ = run_sync(settings, repo, names=names, full=full)
    click.echo(f"sync: {report.summary()}")
    sys.exit(1 if report.errors else 0)


@main.command()
@click.pass_obj
@handles_errors
def render(obj: Ctx) -> None:
    """Rewrite every output (feeds, index.html, feeds.opml, article pages) from the database."""
    from . import recovery
    from .publish import publish

    pending = recovery.begin(obj.settings.output.dir)
    n = publish(obj.settings, obj.repo, changes=None)
    pending.finish()
    click.echo(f"render: {n} files written to {obj.settings.output.dir}")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default server.host).")
@click.option("--port", type=int, default=None, help="Port (default server.port).")
@click.pass_obj
@handles_errors
def serve(obj: Ctx, host: str | None, port: int | None) -> None:
    """Serve the output folder over HTTP for feed readers (ETag, 304, gzip)."""
    from .server import serve as run_server

    settings = obj.settings
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    out = settings.output.dir
    base = f"http://{host}:{port}/"
    click.echo(f"serving {out} at {base}")
    click.echo(f"  all stories:  {base}all.atom   {base}all.rss")
    click.echo(f"  per tag:      {base}tags/<slug>.atom (list: {base}  or {base}feeds.opml)")
    run_server(out, host, port)


@main.command()
@click.option("--tag", default=None, help="Only articles with this tag (name or slug).")
@click.option("--limit", type=int, default=None, help="At most N articles, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
@handles_errors
def articles(obj: Ctx, tag: str | None, limit: int | None, as_json: bool) -> None:
    """List stored articles, newest first."""
    for row in obj.repo.iter_articles(tag=tag, limit=limit):
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{row['published'][:16]}  {row['id']}  {row['title']}  [{', '.join(row['tags'])}]")


@main.command("check-config")
@click.pass_obj
@handles_errors
def check_config(obj: Ctx) -> None:
    """Validate the config file and print where things will go."""
    s = obj.settings
    click.echo(f"ok: {s.config_path}")
    click.echo(f"database: {s.database.url}")
    click.echo(f"output:   {s.output.dir}")
    for src in s.sources:
        click.echo(f"source:   {src.name} ({src.type}) {src.path or src.url} every {src.every}")


def _main_path() -> Path:  # pragma: no cover - helper for python -m
    return Path(__file__)


if __name__ == "__main__":  # pragma: no cover
    main()

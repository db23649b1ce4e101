"""Command line: a thin layer over sync, publish, storage and the server. No logic of its own.

Exit codes scripts can trust: 0 all good, 1 some source or file failed, 2 bad configuration or usage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from . import __version__
from . import config as config_mod
from .errors import ConfigError, Interrupted, StorageError, SyndicatorError

if TYPE_CHECKING:
    from .storage.locks import Lock
    from .sync import Progress, Rendering

log = logging.getLogger("syndicator")
GC_YOUNG = 50_000  # allocations between two collections of the youngest generation (Python's default: 700)


def setup_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    """Logs go to stderr; human-readable by default, JSON lines with ``--log-format json``."""
    from . import logs

    logs.setup(level, fmt)


class Ctx:
    """Lazily loaded settings and repository, shared by the commands."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._settings: config_mod.Settings | None = None
        self._repo: Any = None
        self.log_level: int = logging.INFO

    @property
    def settings(self) -> config_mod.Settings:
        if self._settings is None:
            self._settings = config_mod.load(self.config_path)
        return self._settings

    @property
    def repo(self) -> Any:
        if self._repo is None:
            from .dedup import Thresholds
            from .storage.engine import open_database
            from .storage.repo import Repository

            self._repo = Repository(open_database(self.settings.database.url),
                                    Thresholds(**self.settings.dedup.model_dump()))
        return self._repo

    def close(self) -> None:
        """The command is done: close the database connections it pooled (PostgreSQL)."""
        if self._repo is not None:
            self._repo.engine.dispose()


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
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", envvar="SYNDICATOR_LOG_FORMAT",
              help="Log lines on stderr: text (default) or json (one object per line, with the source).")
@click.version_option(__version__, prog_name="syndicator")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool, quiet: bool, log_format: str) -> None:
    """syndicator: turn news archives and feeds into clean, deduplicated per-tag RSS/Atom feeds.

    \b
    Typical use:
      syndicator sync                 read every source, store articles, write feeds/
      syndicator serve                serve feeds/ at http://127.0.0.1:8080/
      syndicator articles --json      what is stored, one JSON object per line
      syndicator stories --min-members 2   news carried by several channels
      syndicator run                  keep the feeds fresh on schedule and serve them (a service)
      syndicator status               each source's state, last success, last error, next poll
    Every command reads config.yaml (or --config PATH / $SYNDICATOR_CONFIG).
    Exit codes: 0 ok, 1 a source or file failed, 2 bad config or usage, 130 stopped by Ctrl-C.
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    setup_logging(level, log_format)
    ctx.obj = Ctx(config_path)
    ctx.obj.log_level = level
    ctx.call_on_close(ctx.obj.close)


@main.command()
@click.option("--source", "names", multiple=True, metavar="NAME", help="Only this source (repeatable).")
@click.option("--full", is_flag=True, help="Re-read and re-process every file, not just changed ones.")
@click.option("--no-progress", is_flag=True, help="No progress bar even on a terminal.")
@click.pass_obj
@handles_errors
def sync(obj: Ctx, names: tuple[str, ...], full: bool, no_progress: bool) -> None:
    """Read sources, store new and changed articles, re-render the feeds they touch.

    Prints one summary line at the end. Exit 1 when any source or file failed (the rest is still stored).

    Ctrl-C stops after the file being read (stored batches stay, the next sync goes on from there) and
    exits 130; a render that has begun finishes first. A second Ctrl-C stops at once.
    """
    try:
        settings, repo = obj.settings, obj.repo
        with _writer_turn(settings, repo, "sync"):
            _sync_locked(settings, repo, names, full, no_progress)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the sync began: Python's own, at once
        from .stopping import EXIT_STOPPED

        click.echo("sync: stopped at once (Ctrl-C); the batches stored so far stay, and the next sync goes on "
                   "from there", err=True)
        sys.exit(EXIT_STOPPED)


def _writer_turn(settings: Any, repo: Any, command: str) -> Lock:
    """Take turns with a running service (and other syncs and renders): never two writers on the same files,
    and never a render that read the database before a sync's commit writing after that sync's feeds."""
    from .storage import locks
    from .storage.locks import SYNC_LOCK

    wait = settings.schedule.seconds("lock_wait")
    try:
        return locks.acquire(repo.engine, SYNC_LOCK)
    except StorageError:
        click.echo(f"{command}: another process (the service?) is syncing; waiting up to "
                   f"{settings.schedule.lock_wait} …", err=True)
        try:
            return locks.acquire(repo.engine, SYNC_LOCK, wait=wait)
        except StorageError:
            raise StorageError(f"gave up after {settings.schedule.lock_wait}: another process is still syncing "
                               "this database (schedule.lock_wait sets how long to wait)") from None


def _uses_claims(repo: Any) -> bool:
    """``coordination.uses_claims``; only PostgreSQL can have workers, so SQLite never imports coordination
    (and the renderers it imports: a no-op sync renders nothing)."""
    if repo.engine.dialect.name != "postgresql":
        return False
    from .coordination import uses_claims

    return uses_claims(repo)


@contextlib.contextmanager
def progress_bar(console: Any = None) -> Iterator[tuple[Progress, Rendering]]:
    """A sync's progress on the terminal: (files done of a source, out of how many when the sync reads them all;
    the render's start and stages) callbacks. A first or ``--full`` sync gets a bar, its share done and the time
    left; other syncs, which learn what changed only as they scan, a count.

    Redrawn on each update (every 50 files) rather than by rich's refresh thread: a sync forks its workers
    and its render only while it runs a single thread (``forked.available``), so with that thread a sync on
    a terminal took the slow path (a fresh interpreter per worker, the render on one core).
    """
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                  TaskProgressColumn(), TextColumn("{task.fields[files]}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=True, auto_refresh=False, console=console) as bar:
        tasks: dict[str, Any] = {}  # a source's task
        render_task: Any = None

        def progress(name: str, done: int, total: int | None = None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"syncing {name}", total=None, files="")
            if total is not None:  # a file added while the sync runs is read too; an empty folder has no share
                total = max(total, done) or None
            files = f"{done:,}/{total:,} files" if total is not None else f"{done:,} files"
            bar.update(tasks[name], completed=done, total=total, files=files, refresh=True)

        def rendering(stage: str = "") -> None:
            nonlocal render_task
            if render_task is None:
                render_task = bar.add_task("rendering feeds and pages", total=None, files="")
            bar.update(render_task, files=stage, refresh=True)

        yield progress, rendering


def _sync_locked(settings: Any, repo: Any, names: tuple[str, ...], full: bool, no_progress: bool) -> None:
    from .stopping import EXIT_STOPPED, stop_on_ctrl_c

    claims = _uses_claims(repo)  # scale-out workers share this database: poll and render by their claims
    if claims:
        click.echo("sync: workers share this database: each source is polled, and each output rendered, "
                   "under its lease (as a worker does)", err=True)
    # no stop flag with claims: Ctrl-C stays Python's own there, and every claim is one transaction
    stopping = contextlib.nullcontext(None) if claims else stop_on_ctrl_c()
    bar = progress_bar() if sys.stderr.isatty() and not no_progress else contextlib.nullcontext((None, None))
    try:
        with stopping as stop, bar as (progress, rendering):
            if stop is None:
                from .coordination import sync_by_claims

                # the outputs are rendered under their leases, output by output: no single render step to announce
                report = sync_by_claims(settings, repo, names=names, full=full, progress=progress,
                                        wait=settings.schedule.seconds("lock_wait"))
            else:
                from .sync import sync as plain_sync

                report, _ = plain_sync(settings, repo, names=names, full=full, progress=progress, stop=stop,
                                       rendering=stop.announcing_render(rendering))
    except Interrupted as exc:
        click.echo(f"sync: {exc}; what was stored stays, and the next sync goes on from there", err=True)
        sys.exit(EXIT_STOPPED)
    click.echo(f"sync: {report.summary()}")
    sys.exit(1 if report.errors else 0)


@main.command()
@click.pass_obj
@handles_errors
def render(obj: Ctx) -> None:
    """Rewrite every output (feeds, index.html, feeds.opml, article pages) from the database."""
    from . import recovery
    from .publish import publish

    with _writer_turn(obj.settings, obj.repo, "render"):
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
    """List stored articles, newest first; times are shown in the site timezone."""
    tz = ZoneInfo(obj.settings.site.timezone)
    for row in obj.repo.iter_articles(tag=tag, limit=limit):
        for key in ("published", "updated"):
            if row.get(key):
                row[key] = datetime.fromisoformat(row[key]).astimezone(tz).isoformat()
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{row['published'][:16]}  {row['id']}  {row['title']}  [{', '.join(row['tags'])}]")


@main.command()
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object: files, articles, rejected, problems, summary.")
@click.pass_obj
@handles_errors
def lint(obj: Ctx, path: Path | None, as_json: bool) -> None:
    """Check an archive folder without touching the database: one line per problem, then a summary.

    \b
    PATH defaults to every enabled archive source of the config. Without a config file, PATH is read
    with the shipped cleaning rules. Problems: rejected, no_date (and the fallback used), empty_body,
    no_title, broken_yaml, no/unclosed_front_matter, stacked_front_matter, non_utf8,
    unknown_title_suffix, duplicate. Exit 1 when a file cannot become an article at all.
    """
    from .lint import LintReport, lint_folder

    try:
        settings = obj.settings
    except ConfigError:
        if path is None or obj.config_path is not None:
            raise
        settings = config_mod.Settings()  # a bare folder: the shipped rules
    if path is not None:
        resolved = path.resolve()
        src = next((s for s in settings.sources if s.type == "archive" and s.path == resolved), None)
        targets = [(path, src.timezone if src else settings.site.timezone, str(path))]
    else:
        targets = [(s.path, s.timezone, str(s.path)) for s in settings.sources
                   if s.type == "archive" and s.enabled and s.path is not None]
        if not targets:
            raise ConfigError("no archive source in the config; pass a PATH", path=str(settings.config_path))
    report = LintReport()
    for folder, tz, label in targets:
        if not folder.is_dir():
            raise ConfigError(f"archive folder not found: {folder}")
        part = lint_folder(folder, settings.normalize, settings.tags, timezone=tz, label=label)
        report.files += part.files
        report.articles += part.articles
        report.problems += part.problems
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        for problem in report.problems:
            click.echo(problem.line())
        if report.problems:
            click.echo("")
        click.echo(report.table())
    sys.exit(1 if report.rejected else 0)


@main.command()
@click.option("--min-members", type=int, default=1, show_default=True, metavar="N",
              help="Only stories carried by at least N articles (2: the ones found more than once).")
@click.option("--limit", type=int, default=None, help="At most N stories, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, members included.")
@click.pass_obj
@handles_errors
def stories(obj: Ctx, min_members: int, limit: int | None, as_json: bool) -> None:
    """List stories (one news item, however many channels carried it) with their member articles.

    Times are shown in the site timezone; `*` marks the member the feeds show.
    """
    tz = ZoneInfo(obj.settings.site.timezone)

    def local(value: str) -> str:
        return datetime.fromisoformat(value).astimezone(tz).isoformat()

    for row in obj.repo.iter_stories(min_members=min_members, limit=limit):
        row["published"], row["updated"] = local(row["published"]), local(row["updated"])
        for member in row["members"]:
            member["published"] = local(member["published"])
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        click.echo(f"{row['published'][:16]}  {row['story_id']}  {row['title']}  ({row['member_count']})")
        for member in row["members"]:
            mark = "*" if member["duplicate_of"] is None else " "
            where = member["channel"] or member["source"]
            click.echo(f"    {mark} {member['id']}  {where}  {member['title']}")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default server.host).")
@click.option("--port", type=int, default=None, help="Port (default server.port).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Log lines on stderr: text or json (same as the global option).")
@click.option("--role", type=click.Choice(["all", "worker", "web"]), default="all", show_default=True,
              help="Scale-out on PostgreSQL: `worker` polls and renders, `web` only serves; any number of each.")
@click.pass_obj
@handles_errors
def run(obj: Ctx, host: str | None, port: int | None, log_format: str | None, role: str) -> None:
    """Run as a service: poll each source when due, re-render what changed, serve the feeds.

    \b
    One process: the scheduler (every source on its `every:` or `cron:` schedule, failing sources backed
    off) and, unless server.enabled is false, the HTTP server with /healthz and /metrics. Stops cleanly on
    SIGTERM or Ctrl-C (exit 0). Only one `run` per database: a second one refuses to start.
    \b
    Several hosts on one PostgreSQL database (docs/SCALING.md): `--role worker` claims due polls, renders
    and the digest through the database (any number of workers, nothing done twice); `--role web` serves
    the outputs the workers stored in the database (no shared disk). SQLite refuses --role (exit 2).
    """
    from .service import exit_now
    from .service import run as run_service

    if log_format is not None:
        setup_logging(obj.log_level, log_format)
    if role != "all":
        from .roles import check_role, run_role

        check_role(obj.settings, role)
        run_role(obj.settings, role, host=host, port=port)
        sys.exit(0)
    settings, repo = obj.settings, obj.repo
    exit_now(run_service(settings, repo, host=host, port=port))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the service and each source.")
@click.pass_obj
@handles_errors
def status(obj: Ctx, as_json: bool) -> None:
    """Show whether the service runs and each source's state, last success, last error, next poll, articles."""
    from .health import sources_table
    from .scheduler import SERVICE_ROLE
    from .storage.locks import RUN_LOCK, is_held, shared_holders

    settings, repo = obj.settings, obj.repo
    rows = sources_table(settings, repo)
    info = repo.service_info(SERVICE_ROLE)
    workers = shared_holders(repo.engine, RUN_LOCK)  # scale-out workers hold the run lock shared
    running = not workers and is_held(repo.engine, RUN_LOCK)
    if as_json:
        service = {"running": running, "workers": workers, "holder": info.holder if info else None,
                   "started_at": info.started_at.isoformat(timespec="seconds") if info else None,
                   "last_tick_at": info.last_tick_at.isoformat(timespec="seconds") if info and info.last_tick_at else None}
        click.echo(json.dumps({"service": service, "sources": rows}, ensure_ascii=False))
        return
    if workers:
        click.echo(f"service: {workers} scale-out worker(s) running (`run --role worker`)")
    elif running and info is not None:
        tick = f", last tick {info.last_tick_at:%Y-%m-%d %H:%M:%S}" if info.last_tick_at else ""
        click.echo(f"service: running ({info.holder}, since {info.started_at:%Y-%m-%d %H:%M:%S}{tick} UTC)")
    elif running:
        click.echo("service: running")
    else:
        last = f" (last: {info.holder}, stopped {info.stopped_at or info.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)" if info else ""
        click.echo(f"service: not running{last}")

    def when(value: str | None) -> str:
        return value.replace("T", " ").removesuffix("+00:00") if value else "-"

    header = ("SOURCE", "STATE", "LAST SUCCESS (UTC)", "NEXT DUE (UTC)", "ARTICLES", "LAST ERROR")
    table = [header] + [
        (r["name"], r["state"] + (f" ({r['consecutive_failures']}x)" if r["consecutive_failures"] else ""),
         when(r["last_success"]), when(r["next_due"]), str(r["articles"]), r["last_error"] or "-")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])


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
    d = s.digest
    if d.enabled:
        mail = f"e-mail to {', '.join(d.email.to)} via {d.email.host}:{d.email.port}" if d.email.enabled else "e-mail off"
        click.echo(f"digest:   daily at {d.time} {s.site.timezone} ({d.day} day), {mail}")


@main.command()
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD",
              help="The local day (site.timezone); default: digest.day (the previous day).")
@click.option("--email", is_flag=True, help="Also e-mail it (once per day: a day already sent is not sent again).")
@click.pass_obj
@handles_errors
def digest(obj: Ctx, day: str | None, email: bool) -> None:
    """Write a day's digest: digest/YYYY-MM-DD.html and .md, digest.atom/.rss, the archive and front page.

    Exit 1 when the e-mail could not be sent (the day stays unsent; the next run retries).
    """
    from datetime import date as date_cls

    from .digest import default_day, run_digest

    settings = obj.settings
    if day is None:
        chosen = default_day(settings)
    else:
        try:
            chosen = date_cls.fromisoformat(day)
        except ValueError:
            raise click.BadParameter(f"{day!r} is not a date (use YYYY-MM-DD)", param_hint="--date") from None
    # the front page and the digest feeds are the sync's and render's files too: take turns with them
    with _writer_turn(settings, obj.repo, "digest"):
        result = run_digest(settings, obj.repo, chosen, email)
    click.echo(result.summary())


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _state_of(src: Any, st: Any) -> str:
    """ok / failing / disabled: reason / never polled / off (enabled: false in config)."""
    if st is None or st.last_attempt is None:
        return "never polled" if src is None or src.enabled else "off"
    if st.disabled_reason:
        return f"disabled: {st.disabled_reason}"
    if src is not None and not src.enabled:
        return "off"
    return "failing" if st.consecutive_failures else "ok"


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per source.")
@click.pass_context
def sources(ctx: click.Context, as_json: bool) -> None:
    """List sources: type, URL/path, state, last success, last error, failures, next due, ETag, items.

    \b
    syndicator sources              the table
    syndicator sources check NAME   fetch once without storing; print what would be added
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Ctx = ctx.obj
    try:
        settings = obj.settings
        stored = {st.name: st for st in obj.repo.source_status()}
    except SyndicatorError as exc:
        _fail(exc)
    for src in settings.sources:
        st = stored.get(src.name)
        row = {
            "name": src.name,
            "type": src.type,
            "location": (st.current_url if st is not None and st.current_url else None) or str(src.url or src.path),
            "state": _state_of(src, st),
            "last_success": _when(st.last_success if st else None),
            "last_error": (st.last_error if st else None) or "",
            "consecutive_failures": st.consecutive_failures if st else 0,
            "next_due": _when(st.next_due if st else None),
            "etag": (st.etag if st else None) or "",
            "items": st.articles if st else 0,
        }
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        click.echo(f"{row['name']}  ({row['type']})  {row['location']}")
        click.echo(f"  state: {row['state']}   items: {row['items']}   failures: {row['consecutive_failures']}")
        click.echo(f"  last success: {row['last_success']}   next due: {row['next_due']}   etag: {row['etag'] or '-'}")
        if row["last_error"]:
            click.echo(f"  last error: {row['last_error']}")


@sources.command("check")
@click.argument("name")
@click.option("--limit", type=int, default=20, show_default=True, help="Show (and fetch pages for) at most N items.")
@click.pass_obj
@handles_errors
def sources_check(obj: Ctx, name: str, limit: int) -> None:
    """Fetch source NAME once, storing nothing, and print what a sync would add.

    Exit 1 when the fetch fails (the one-line error says why).
    """
    from .poll import check

    src = obj.settings.source(name)
    if src.type == "archive":
        raise ConfigError(f"source {name!r} is an archive; `sources check` fetches feed and html sources")
    results = check(obj.settings, obj.repo, src, limit=limit)
    new = sum(1 for c in results if c.article is not None and not c.stored)
    for c in results:
        if c.article is None:
            click.echo(f"error   {c.key}: {c.error}")
            continue
        a = c.article
        mark = "stored" if c.stored else "new"
        click.echo(f"{mark:<7} {a.published:%Y-%m-%d %H:%M}  {a.title}  [{', '.join(a.tags)}]")
        click.echo(f"        {a.link or c.key}")
    click.echo(f"check: {src.name}: {len(results)} items, {new} would be added")


def run_main() -> None:  # pragma: no cover - the process's own end, exercised by tests/test_cli_process.py
    """The ``syndicator`` program: ``main``, then a quick exit once the command is done.

    Tearing down the interpreter frees every object the command made, one by one: 0.25 s after a sync of the
    real corpus, more the bigger the database, and nothing a user waits for. Once the command has returned,
    its output is flushed and the exit handlers have run (logging, the worker processes' clean-up, the
    database connections), the process ends at once (``os._exit``) with the command's exit code. An
    unexpected exception still ends the ordinary way, with its traceback.
    """
    import atexit
    import gc
    import os

    # A sync makes millions of short-lived containers (rows, shingle sets, candidate lists); at the default
    # threshold of 700 the cycle collector ran so often that it took ~10 % of a 30,000-post cold sync. Most of
    # them are freed by reference counting anyway: collect less often (cycles still go, a little later).
    gc.set_threshold(GC_YOUNG, 20, 10)
    try:
        main()
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):  # what sys.exit would print
            click.echo(exc.code, err=True)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's own, what a normal exit runs
    if run_exit_handlers is None:
        sys.exit(code)
    run_exit_handlers()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`syndicator … | head`): nothing more to say
            code = code or 1
    os._exit(code)


def _main_path() -> Path:  # pragma: no cover - helper for python -m
    return Path(__file__)


if __name__ == "__main__":  # pragma: no cover
    run_main()

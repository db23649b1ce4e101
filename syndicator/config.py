"""config.yaml → validated, frozen Settings.

Validation is pydantic's; this module only turns its errors into one line that names the key and what is
allowed, resolves relative paths against the config file's folder, and applies environment overrides
(``SYNDICATOR_CONFIG`` picks the file; ``SYNDICATOR_DATABASE_URL`` overrides ``database.url``).
No business logic lives here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

DEFAULT_CONFIG = "config.yaml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float) -> float:
    """``30s``, ``15m``, ``2h``, ``1d`` (or a number of seconds) → seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Asia/Shanghai or UTC)") from exc
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSettings(_Section):
    title: str = "syndicator"
    description: str = ""
    base_url: str = "http://127.0.0.1:8080/"
    timezone: str = "Asia/Shanghai"
    language: str = "zh-CN"

    @field_validator("base_url")
    @classmethod
    def _slash(cls, v: str) -> str:
        if not re.match(r"^https?://", v):
            raise ValueError("must be an http:// or https:// URL")
        return v if v.endswith("/") else v + "/"

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/syndicator.db"


class OutputSettings(_Section):
    dir: Path = Path("feeds")
    max_entries: int = Field(default=50, ge=1, le=10000)
    files: bool = True  # with PostgreSQL outputs are also stored in the database; false: only there


DEFAULT_USER_AGENT = "syndicator/0.1 (newsroom feed syndicator; polite poller)"


class HttpSettings(_Section):
    """Defaults of every remote source (``http:`` section); a source can override each one."""

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    timeout: float = Field(default=30.0, gt=0, le=3600)  # total deadline of one response, body included
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)  # counted on decompressed bytes
    max_redirects: int = Field(default=5, ge=0, le=5)
    max_retry_after: str = "24h"  # a Retry-After longer than this is capped
    allow_private_networks: bool = False
    allow_networks: list[str] = Field(default_factory=list)  # CIDRs exempt from the guard (one internal host)
    min_interval: str = "1s"  # per host, between two requests of an html source's article pages
    max_connections: int = Field(default=2, ge=1, le=16)  # per host, at once

    @field_validator("max_retry_after", "min_interval")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("allow_networks")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a network: {net!r} (use e.g. 10.1.2.3/32)") from exc
        return v


class Selectors(_Section):
    """CSS selectors of an ``html`` source: listing ``item`` and its fields, article ``content``."""

    item: str
    title: str
    link: str
    date: str | None = None
    summary: str | None = None
    content: str | None = None  # on each article page: the body (fetched once per article)
    remove: list[str] = Field(default_factory=list)  # junk inside ``content`` (share bars, ads …)


class AuthSettings(_Section):
    """HTTP basic auth; secrets come from environment variables, never from the config file."""

    username: str | None = None
    username_env: str | None = None
    password_env: str

    @model_validator(mode="after")
    def _one_user(self) -> AuthSettings:
        if (self.username is None) == (self.username_env is None):
            raise ValueError("auth needs exactly one of `username` or `username_env`")
        return self


class SourceSettings(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    type: Literal["archive", "feed", "html"]
    path: Path | None = None
    url: str | None = None
    timezone: str = "Asia/Shanghai"
    every: str = "15m"
    cron: str | None = None
    enabled: bool = True
    # archive sources: `syndicator run` watches the folder and polls the changed files at once (default true);
    # None means "the default of the type" (only archives can be watched)
    watch: bool | None = None
    # remote sources (feed, html); None means "the http: section's value"
    user_agent: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    cookies: dict[str, str] = Field(default_factory=dict)
    auth: AuthSettings | None = None
    timeout: float | None = Field(default=None, gt=0, le=3600)
    connect_timeout: float | None = Field(default=None, gt=0, le=300)
    verify: bool | str = True  # False, or a CA bundle path
    allow_private_networks: bool | None = None
    max_bytes: int | None = Field(default=None, ge=1024)
    min_interval: str | None = None
    max_connections: int | None = Field(default=None, ge=1, le=16)
    selectors: Selectors | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v, re.IGNORECASE):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("min_interval")
    @classmethod
    def _min_interval(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))

    @field_validator("every")
    @classmethod
    def _every(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError("must be longer than 0s")
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        # the scheduler checks each field when `run` starts; here only the shape
        if v is not None and len(v.split()) != 5:
            raise ValueError(f"not a crontab expression {v!r} (five fields: minute hour day month weekday)")
        return v

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.every)

    @model_validator(mode="after")
    def _needs(self) -> SourceSettings:
        if self.type == "archive" and self.path is None:
            raise ValueError(f"source {self.name!r} of type archive needs `path`")
        if self.type in ("feed", "html") and not self.url:
            raise ValueError(f"source {self.name!r} of type {self.type} needs `url`")
        if self.type == "html" and self.selectors is None:
            raise ValueError(f"source {self.name!r} of type html needs `selectors` (item, title, link)")
        if self.watch is not None and self.type != "archive":
            raise ValueError(f"source {self.name!r} of type {self.type} cannot be watched: `watch` is for "
                             "archive sources (a folder); remove it")
        return self

    @property
    def watched(self) -> bool:
        """Whether `syndicator run` watches this source's folder for changed files (archives, unless off)."""
        return self.type == "archive" and self.watch is not False


class TagSettings(_Section):
    channels: dict[str, str] = Field(default_factory=dict)
    rules: dict[str, list[str]] = Field(default_factory=dict)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    enabled: bool = True


class _Durations(_Section):
    """A section with duration keys (``"30s"``, ``"15m"``) read in seconds."""

    def seconds(self, key: str) -> float:
        """A duration setting in seconds."""
        return parse_duration(str(getattr(self, key)))


def _positive_duration(v: str) -> str:
    """Validator body shared by the duration keys that must be longer than zero."""
    if parse_duration(v) <= 0:
        raise ValueError("must be longer than 0s")
    return v


class ScheduleSettings(_Durations):
    """How the service (`syndicator run`) schedules polls and backs off failing sources."""

    tick: str = "1s"  # how often the scheduler asks the database which sources are due
    jitter: float = Field(default=0.1, ge=0, le=1)  # random extra delay, as a fraction of the interval
    backoff_base: str = "1m"  # first retry delay after a failure; doubles per consecutive failure
    backoff_max: str = "6h"  # retry delays never exceed this
    misfire_grace: str = "30s"  # a tick late by more than this is skipped (the next one catches up)
    lock_wait: str = "10m"  # how long `sync` waits for the service's current sync before giving up
    watch_delay: str = "0.1s"  # a watched archive's changes within this window are polled together

    @field_validator("tick", "backoff_base", "backoff_max", "misfire_grace", "lock_wait")
    @classmethod
    def _duration(cls, v: str) -> str:
        return _positive_duration(v)

    @field_validator("watch_delay")
    @classmethod
    def _delay(cls, v: str) -> str:
        if not 0 <= parse_duration(v) <= 60:
            raise ValueError("must be between 0s and 60s")
        return v



class ClusterSettings(_Durations):
    """Scale-out (`syndicator run --role worker|web` on PostgreSQL): how workers share the work.

    Workers ask the database for due work every ``schedule.tick`` and back failing sources off like the
    single-process service (``schedule.backoff_*``).
    """

    lease: str = "30s"  # a claimed poll/render/digest is another worker's after this long without renewal
    poll_batch: int = Field(default=2, ge=1, le=1000)  # sources one worker claims per round (≤ free poll threads)
    poll_threads: int = Field(default=4, ge=1, le=64)  # polls one worker runs at once (HTTP waits overlap)
    render_batch: int = Field(default=500, ge=1, le=100000)  # outputs one worker claims per tick
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # worker /metrics (None: off; 0: any free)

    @field_validator("lease")
    @classmethod
    def _duration(cls, v: str) -> str:
        return _positive_duration(v)


class NormalizeSettings(_Section):
    """Cleaning rules as data (regular expressions); a newsroom adds a site by adding rules, not code.

    Each list *extends* the shipped defaults in ``syndicator.normalize.rules`` unless
    ``replace_defaults: true`` is set.
    """

    replace_defaults: bool = False
    title_suffixes: list[str] = Field(default_factory=list)
    boilerplate_lines: list[str] = Field(default_factory=list)
    editor_lines: list[str] = Field(default_factory=list)
    byline_after: list[str] = Field(default_factory=list)
    byline_lines: list[str] = Field(default_factory=list)  # reporter bylines (``name`` group) and column labels
    lead_bylines: list[str] = Field(default_factory=list)  # name lines leading the body: reporters
    footer_lines: list[str] = Field(default_factory=list)
    end_lines: list[str] = Field(default_factory=list)  # the article ends at such a line (page furniture after it)
    junk_dates: list[str] = Field(default_factory=list)
    publishers: list[str] = Field(default_factory=list)
    submitters: list[str] = Field(default_factory=list)
    editor_ends_article: bool = True  # an editor line (责任编辑) closes the article: page furniture follows it
    min_image_size: int = Field(default=32, ge=0)
    summary_chars: int = Field(default=150, ge=20, le=2000)
    # related-article snippets follow the article behind a run of at least this many lines that hold only
    # spaces (yicai layout); 0 turns the cut off
    related_blank_lines: int = Field(default=2, ge=0, le=20)

    @field_validator(
        "title_suffixes",
        "boilerplate_lines",
        "editor_lines",
        "byline_after",
        "byline_lines",
        "lead_bylines",
        "footer_lines",
        "end_lines",
        "junk_dates",
        "publishers",
        "submitters",
    )
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
        return v


class DedupSettings(_Section):
    """When articles are one story (near-duplicates); see syndicator.dedup.Thresholds."""

    enabled: bool = True
    jaccard: float = Field(default=0.7, gt=0, le=1)
    containment: float = Field(default=0.9, gt=0, le=1)
    max_extra: float = Field(default=0.55, ge=0, le=1)
    same_title_containment: float = Field(default=0.5, gt=0, le=1)
    min_shingles: int = Field(default=40, ge=1)
    min_shingles_retitled: int = Field(default=200, ge=1)
    max_candidates: int = Field(default=20, ge=1, le=1000)


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class EmailSettings(_Section):
    """Digest e-mail over SMTP. Credentials come from the environment (never from the config file) when the
    variables named by ``username_env`` / ``password_env`` are set; ``username`` in the file is a fallback."""

    enabled: bool = False
    to: list[str] = Field(default_factory=list)
    sender: str = "syndicator@localhost"
    subject: str = "{title} 每日摘要 {date}（{count} 篇）"
    host: str = "127.0.0.1"
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    username_env: str = "SYNDICATOR_SMTP_USERNAME"
    password_env: str = "SYNDICATOR_SMTP_PASSWORD"
    timeout: str = "30s"
    ca_file: Path | None = None  # PEM bundle to trust for the server's certificate (an internal CA)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        try:
            v.format(title="", date="", count=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad subject template {v!r}: use the fields {{title}}, {{date}}, {{count}}") from exc
        return v

    @model_validator(mode="after")
    def _needs(self) -> EmailSettings:
        if self.enabled and not self.to:
            raise ValueError("email is enabled but `to` lists no recipient")
        if self.ssl and self.starttls:
            raise ValueError("choose one of `ssl` (implicit TLS, port 465) and `starttls`")
        return self

    def credentials(self) -> tuple[str, str] | None:
        """(username, password) from the environment (or ``username`` + env password); None: no login."""
        user = os.environ.get(self.username_env) or self.username
        password = os.environ.get(self.password_env)
        return (user, password) if user and password is not None else None


class DigestSettings(_Section):
    """The daily digest: which day, how it is grouped and cut, when the service makes it, who gets it."""

    enabled: bool = True
    time: str = "07:00"  # local time (site.timezone) of the daily digest job
    day: Literal["previous", "current"] = "previous"  # what the job and `syndicator digest` pick by default
    tag_order: list[str] = Field(default_factory=list)  # tag names or slugs shown first, in this order
    other_tags: Literal["count", "name"] = "count"  # order of the tags not in tag_order
    top_stories: int = Field(default=5, ge=0, le=100)
    top_min_channels: int = Field(default=2, ge=1, le=100)  # 1: the top section is simply the newest stories
    max_per_tag: int = Field(default=20, ge=1, le=1000)
    max_tags: int = Field(default=50, ge=1, le=1000)
    untagged: str = "其他"  # section title of stories without tags
    feed_entries: int = Field(default=30, ge=1, le=1000)  # days in digest.atom / digest.rss
    index_entries: int = Field(default=7, ge=0, le=365)  # latest digests listed on index.html
    email: EmailSettings = Field(default_factory=EmailSettings)

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"not a local time {v!r} (use HH:MM, e.g. 07:00)")
        return v

    @property
    def hour_minute(self) -> tuple[int, int]:
        h, m = self.time.split(":")
        return int(h), int(m)


class LimitSettings(_Section):
    """Bounds on hostile or broken input: over-limit text is truncated, an over-limit file is rejected."""

    max_title_chars: int = Field(default=300, ge=10, le=300)  # the normalizer never keeps more than 300
    max_body_bytes: int = Field(default=200_000, ge=1_000)  # UTF-8 bytes of the sanitized body HTML
    max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1_000)  # archive files larger are skipped
    future_tolerance: str = "1d"  # a date further ahead than this is not trusted for ordering

    @field_validator("future_tolerance")
    @classmethod
    def _tolerance(cls, v: str) -> str:
        parse_duration(v)
        return v

    @property
    def future_tolerance_seconds(self) -> float:
        return parse_duration(self.future_tolerance)


class Settings(_Section):
    site: SiteSettings = Field(default_factory=SiteSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    sources: list[SourceSettings] = Field(default_factory=list)
    tags: TagSettings = Field(default_factory=TagSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    normalize: NormalizeSettings = Field(default_factory=NormalizeSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    allow_private_networks: bool = False  # the whole config: same as http.allow_private_networks
    digest: DigestSettings = Field(default_factory=DigestSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    config_path: Path | None = None  # set by load(); not a config key users write

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"two sources are named {s.name!r}; names must be unique")
            seen.add(s.name)
        return self

    def source(self, name: str) -> SourceSettings:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"no source named {name!r} (known: {', '.join(s.name for s in self.sources) or 'none'})")


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Walk the model along an error location to list the keys allowed at that level."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        current = args[0] if args and isinstance(args[0], type) and issubclass(args[0], BaseModel) else ann
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [k for k in current.model_fields if k != "config_path"]
    return []


def _format_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(Settings, loc)
        return key, f"unknown key (allowed: {', '.join(allowed)})"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "literal_error":
        msg = f"bad value {err.get('input')!r}: {msg.lower()}"
    return key or "(top level)", msg


def _resolve(settings: Settings, base: Path) -> Settings:
    """Resolve relative paths (database file, output dir, archive paths) against the config's folder."""
    url = settings.database.url
    m = re.match(r"^(sqlite(?:\+\w+)?:///)(.*)$", url)
    if m and m.group(2) and not m.group(2).startswith("/") and m.group(2) != ":memory:":
        url = m.group(1) + str((base / m.group(2)).resolve())
    out = settings.output.dir if settings.output.dir.is_absolute() else (base / settings.output.dir).resolve()
    sources = [
        s.model_copy(update={"path": (base / s.path).resolve()}) if s.path is not None and not s.path.is_absolute() else s
        for s in settings.sources
    ]
    digest = settings.digest
    ca = digest.email.ca_file
    if ca is not None and not ca.is_absolute():
        digest = digest.model_copy(update={"email": digest.email.model_copy(update={"ca_file": (base / ca).resolve()})})
    return settings.model_copy(
        update={
            "database": settings.database.model_copy(update={"url": url}),
            "output": settings.output.model_copy(update={"dir": out}),
            "sources": sources,
            "digest": digest,
        }
    )


def config_path_from_env(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $SYNDICATOR_CONFIG, else ./config.yaml."""
    return Path(explicit or os.environ.get("SYNDICATOR_CONFIG") or DEFAULT_CONFIG)


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read, validate and resolve a config file; every problem becomes one ConfigError line."""
    p = config_path_from_env(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found (pass --config PATH or set SYNDICATOR_CONFIG)", path=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", path=str(p)) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"not valid YAML{where}", path=str(p)) from None
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections (site, database, output, sources …)", path=str(p))
    return from_mapping(data, base=p.resolve().parent, path=p)


def from_mapping(data: dict[str, Any], *, base: Path, path: Path | None = None) -> Settings:
    """Validate a mapping as if it were a config file in folder ``base``."""
    data = dict(data)
    env_db = os.environ.get("SYNDICATOR_DATABASE_URL")
    if env_db:
        data["database"] = {**(data.get("database") or {}), "url": env_db}
    if "config_path" in data:
        raise ConfigError("config_path: unknown key", path=str(path) if path else None)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        key, msg = _format_error(exc)
        raise ConfigError(msg, path=str(path) if path else None, key=key) from None
    settings = _resolve(settings, base)
    return settings.model_copy(update={"config_path": path.resolve() if path else None})

"""Tables (SQLAlchemy 2.0 typed models). Changing them means adding an Alembic migration in migrations/versions.

Dates are stored as naive UTC (portable across SQLite and PostgreSQL) and come back aware (``UTCDateTime``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Source(Base):
    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(20))
    location: Mapped[str | None] = mapped_column(Text)  # path or URL as configured
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SourceState(Base):
    """Fetch and schedule state of a source, committed together with its articles."""

    __tablename__ = "source_state"
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    current_url: Mapped[str | None] = mapped_column(Text)
    last_attempt: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_due: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[str | None] = mapped_column(Text)  # JSON for source-specific state (redirect counts …)
    # remote sources (migration 0004)
    configured_url: Mapped[str | None] = mapped_column(Text)  # the URL in config when current_url was derived
    last_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of the last response
    redirect_target: Mapped[str | None] = mapped_column(Text)  # where the last permanent redirects pointed
    redirect_count: Mapped[int | None] = mapped_column(Integer)  # how many polls in a row they did
    interval_seconds: Mapped[int | None] = mapped_column(Integer)  # polling interval after max-age / <ttl>


class SourceItem(Base):
    """What was last seen for one key of a source (archive file: size, mtime, bytes hash)."""

    __tablename__ = "source_items"
    __table_args__ = (UniqueConstraint("source_id", "key", name="uq_source_items_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    raw_hash: Mapped[str | None] = mapped_column(String(64))
    article_id: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)


class Story(Base):
    __tablename__ = "stories"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    canonical_article_id: Mapped[str | None] = mapped_column(String(32))
    published: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)
    member_count: Mapped[int] = mapped_column(Integer, default=1)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("source_id", "key", name="uq_articles_source_key"),
        Index("ix_articles_story", "story_id"),
        Index("ix_articles_content_hash", "content_hash"),
        Index("ix_articles_canonical_url", "canonical_url"),
        Index("ix_articles_published", "published"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(Text)
    story_id: Mapped[str] = mapped_column(ForeignKey("stories.id"))
    title: Mapped[str] = mapped_column(Text)
    original_title: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(Text)
    published: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime | None] = mapped_column(UTCDateTime)
    date_source: Mapped[str] = mapped_column(String(20))
    author: Mapped[str | None] = mapped_column(Text)
    submitter: Mapped[str | None] = mapped_column(Text)
    publisher: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    content_html: Mapped[str] = mapped_column(Text)
    content_text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    canonical_url: Mapped[str | None] = mapped_column(Text)
    source_path: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_changed: Mapped[datetime] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ArticleVersion(Base):
    """An earlier text of an article (a re-scrape, an edit, a stacked front-matter block)."""

    __tablename__ = "article_versions"
    __table_args__ = (UniqueConstraint("article_id", "version", name="uq_article_versions"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    published: Mapped[datetime] = mapped_column(UTCDateTime)
    content_html: Mapped[str] = mapped_column(Text)
    content_text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    slug: Mapped[str] = mapped_column(String(250), unique=True)


class ArticleTag(Base):
    __tablename__ = "article_tags"
    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)


class StoryTag(Base):
    """Union of the tags of a story's live members (kept in step by the repository) for fast tag feeds."""

    __tablename__ = "story_tags"
    __table_args__ = (Index("ix_story_tags_tag_published", "tag_id", "published"),)
    story_id: Mapped[str] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    published: Mapped[datetime] = mapped_column(UTCDateTime)


class ArticleBand(Base):
    """The persistent near-duplicate index: one row per LSH band of a live article's MinHash.

    Adding an article looks its band keys up through ``ix_article_bands_key``; nothing rescans the table.
    """

    __tablename__ = "article_bands"
    __table_args__ = (Index("ix_article_bands_key", "band_key"),)
    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    band_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    band_key: Mapped[int] = mapped_column(BigInteger)


class Output(Base):
    """A rendered output (feed, page) and its hash: lets a render skip unchanged files and web nodes serve them."""

    __tablename__ = "outputs"
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    etag: Mapped[str] = mapped_column(String(80))
    updated: Mapped[datetime] = mapped_column(UTCDateTime)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)


class ServiceInstance(Base):
    """Who runs a service role (``scheduler``) on this database, and since when: `status` and /healthz read it.

    The lock itself is an OS file lock (SQLite) or an advisory lock (PostgreSQL); this row only reports.
    """

    __tablename__ = "service_instances"
    role: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(300))  # host:pid
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DigestRecord(Base):
    """One local day's digest: a fingerprint of its stories (so ``updated`` moves only when they change) and
    the e-mail state (so a restart never sends the same day twice)."""

    __tablename__ = "digests"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD in site.timezone
    fingerprint: Mapped[str] = mapped_column(String(64))
    stories: Mapped[int] = mapped_column(Integer)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)
    email_status: Mapped[str | None] = mapped_column(String(10))  # None | "sending" | "sent"
    email_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_recipients: Mapped[str | None] = mapped_column(Text)
    email_message_id: Mapped[str | None] = mapped_column(Text)

"""Catalog schema: one row per original, plus the people, places, albums and trash that views show.

Portable SQL only (SQLite by default, PostgreSQL for scale-out): no JSON operators, no partial indexes
the other engine lacks. Every schema change goes through an Alembic migration in `migrations/`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# Asset status values: only "ok" and "corrupt" assets are shown in views (corrupt ones are still
# originals the user owns); "trashed" assets live in trash/ until restored or purged.
STATUS_OK = "ok"
STATUS_CORRUPT = "corrupt"
STATUS_TRASHED = "trashed"
VISIBLE = (STATUS_OK, STATUS_CORRUPT)


def is_visible(column):  # noqa: ANN001, ANN201 - a SQL expression
    """`status != 'trashed'`: the same rows as `status IN VISIBLE`, but a condition no index can
    serve, so the planner keeps the date/place index instead of walking the status index (one
    MIN(year) took 1.2 s on a million rows with IN, 0.1 ms with this)."""
    return column != STATUS_TRASHED


class Place(Base):
    __tablename__ = "places"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    country: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(200))
    __table_args__ = (UniqueConstraint("country", "region", "city", name="uq_place"),)


class Asset(Base):
    __tablename__ = "assets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder: Mapped[str] = mapped_column(String(4000), index=True)  # relative dir, "" = top
    filename: Mapped[str] = mapped_column(String(1000))
    vname: Mapped[str] = mapped_column(String(1000))  # stable virtual name in computed views
    vname_key: Mapped[str] = mapped_column(String(1000), unique=True)
    tname_key: Mapped[str] = mapped_column(String(1000), unique=True)  # its .jpg rendition name
    tname: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sidecar_mtime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    media_type: Mapped[str] = mapped_column(String(16))
    mime: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=STATUS_OK, index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    taken_source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tz_offset_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    alt: Mapped[float | None] = mapped_column(Float, nullable=True)
    place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"), nullable=True, index=True)
    make: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lens: Mapped[str | None] = mapped_column(String(200), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    orientation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    content_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    stack_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (
        UniqueConstraint("folder", "filename", name="uq_asset_path"),
        Index("ix_assets_date", "year", "month", "day"),
    )


class Person(Base):
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    name_key: Mapped[str | None] = mapped_column(String(300), nullable=True, unique=True)
    trashed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AssetPerson(Base):
    """A person seen in an asset: from XMP regions, face detection or a manual COPY.

    `rejected` remembers "this is not P" so that automatic grouping never puts it back.
    """

    __tablename__ = "asset_people"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # xmp | face | manual
    rejected: Mapped[bool] = mapped_column(Boolean, default=False)
    x: Mapped[float | None] = mapped_column(Float, nullable=True)
    y: Mapped[float | None] = mapped_column(Float, nullable=True)
    w: Mapped[float | None] = mapped_column(Float, nullable=True)
    h: Mapped[float | None] = mapped_column(Float, nullable=True)


class Keyword(Base):
    __tablename__ = "keywords"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)


class AssetKeyword(Base):
    __tablename__ = "asset_keywords"
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    keyword_id: Mapped[int] = mapped_column(
        ForeignKey("keywords.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Album(Base):
    """An album or album group; `path` is 'Trips/Italy 2021' for nested ones."""

    __tablename__ = "albums"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(2000))
    path_key: Mapped[str] = mapped_column(String(2000), unique=True)
    parent: Mapped[str] = mapped_column(String(2000), index=True)  # path of the group, "" = top
    trashed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AlbumAsset(Base):
    __tablename__ = "album_assets"
    album_id: Mapped[int] = mapped_column(
        ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(DateTime)


class Folder(Base):
    """A real folder under the originals, so that listing `originals/` never walks the disk."""

    __tablename__ = "folders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4000), unique=True)
    parent: Mapped[str] = mapped_column(String(4000), index=True)
    name: Mapped[str] = mapped_column(String(1000))


class TrashItem(Base):
    """Something removed that can be restored: an asset, an album, a person, a link or a version.

    `payload` is JSON text describing how to undo the removal (portable: no JSON column type).
    """

    __tablename__ = "trash_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # asset | album | person | link | version
    name: Mapped[str] = mapped_column(String(1000))
    asset_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    file: Mapped[str | None] = mapped_column(String(4000), nullable=True)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    deleted_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    deleted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class DeadProperty(Base):
    """WebDAV dead properties (Windows sets Win32 times via PROPPATCH), keyed by virtual path."""

    __tablename__ = "dav_properties"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4000), index=True)
    name: Mapped[str] = mapped_column(String(500))
    value: Mapped[str] = mapped_column(Text)
    __table_args__ = (UniqueConstraint("path", "name", name="uq_dav_prop"),)


class Job(Base):
    """Journal of multi-step work (ingest, edits) replayed on start after a crash."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

"""Catalog tables of face detection (created by migration 0002_faces)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..catalog.models import Base


class Face(Base):
    """One detected face: region in the displayed frame and its 128-d dlib descriptor.

    `person_id` is the group (named or not) the face belongs to; NULL while ungrouped. The face is
    shown through an AssetPerson(source='face') link with the same region.
    """

    __tablename__ = "faces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), nullable=True, index=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)  # 128 x float32 little-endian


class FaceScan(Base):
    """An asset whose faces are in `faces` (written in the same transaction: resumable)."""

    __tablename__ = "face_scans"
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))  # content scanned; rescanned when it changes
    faces: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    scanned_at: Mapped[datetime] = mapped_column(DateTime)

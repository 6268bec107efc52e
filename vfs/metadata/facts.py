"""What a file says about itself: the result of metadata extraction, independent of the catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Region:
    """A named (or unnamed) face/person region.

    Coordinates are normalised to 0..1, top-left origin, in the frame of the image **as displayed**
    (EXIF orientation applied), x/y the top-left corner. `name` is None for unnamed regions.
    `source` says which schema it came from: "mwg", "mp" (Microsoft Photo), "iptc", "digikam".
    """

    name: str | None
    x: float
    y: float
    w: float
    h: float
    source: str = "mwg"


@dataclass
class Facts:
    """Everything photovfs catalogues about one media file.

    `taken_at` is the naive local wall-clock time of capture; `tz_offset_min` the offset from UTC when
    the file says it. `taken_source` records which fallback gave the date: "exif:DateTimeOriginal",
    "exif:DateTimeDigitized", "exif:DateTime", "xmp:<tag>", "quicktime", "filename", "mtime".
    Invalid values (0000:00:00 dates, NaN or 0/0 GPS) are None, never data.
    """

    media_type: str  # "image" | "video" | "other"
    mime: str
    ok: bool = True
    error: str | None = None
    taken_at: datetime | None = None
    taken_source: str | None = None
    tz_offset_min: int | None = None
    lat: float | None = None
    lon: float | None = None
    alt: float | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    duration: float | None = None
    people: list[str] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    albums: list[str] = field(default_factory=list)
    content_id: str | None = None  # Apple ContentIdentifier: pairs a Live Photo's still and video

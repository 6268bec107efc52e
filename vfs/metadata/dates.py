"""Parsing capture dates from EXIF strings, XMP/ISO 8601 strings and file names.

Every parser returns None for anything that is not a plausible real date: cameras write
"0000:00:00 00:00:00" or blanks when the clock was never set, and file names contain many digit
runs that merely look like dates. A wrong date is worse than none, because the fallback chain in
`photovfs.metadata` can still find a better one.
"""

from __future__ import annotations

import re
from datetime import datetime

MIN_YEAR = 1826  # the oldest surviving photograph; anything earlier is a broken clock
MAX_YEAR = 2100
_MAX_OFFSET_MIN = 14 * 60

_EXIF_RE = re.compile(
    r"^\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
_ISO_RE = re.compile(
    r"^\s*(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?)?)?"
    r"\s*(?:GMT|UTC)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.IGNORECASE,
)
_OFFSET_RE = re.compile(r"^\s*(?:GMT|UTC)?\s*([+-])(\d{2}):?(\d{2})?\s*$", re.IGNORECASE)


def make_datetime(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime | None:
    """A datetime when the parts form a real date in the accepted year range, else None."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def _num(s: str | None) -> int:
    return int(s) if s else 0


def parse_exif_datetime(value: object) -> datetime | None:
    """Parse an EXIF "YYYY:MM:DD HH:MM:SS" value; blanks, zeros and junk give None."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    m = _EXIF_RE.match(value.replace("\x00", ""))
    if not m or m.group(4) is None:
        return None
    y, mo, d, h, mi, s = (_num(g) for g in m.groups())
    return make_datetime(y, mo, d, h, mi, s)


def parse_offset(value: object) -> int | None:
    """Minutes east of UTC from "+02:00" / "-0530" / "Z"; None when absent or out of range."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    if value.upper() == "Z":
        return 0
    m = _OFFSET_RE.match(value)
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + _num(m.group(3))
    if minutes > _MAX_OFFSET_MIN or _num(m.group(3)) >= 60:
        return None
    return -minutes if m.group(1) == "-" else minutes


def parse_iso_datetime(value: object) -> tuple[datetime, int | None] | None:
    """Parse an XMP/ISO 8601 date ("2021-04-30T09:42:39.12+02:00", "2002-06-20", "...GMT+02:00").

    Returns the wall-clock time as written plus its UTC offset in minutes when one is given.
    Year-only and year-month values are rejected: they are too coarse to place a photo.
    """
    if not isinstance(value, str):
        return None
    m = _ISO_RE.match(value.replace("\x00", ""))
    if not m or m.group(3) is None:
        return None
    y, mo, d, h, mi, s = (_num(g) for g in m.groups()[:6])
    dt = make_datetime(y, mo, d, h, mi, s)
    if dt is None:
        return None
    return dt, parse_offset(m.group(7)) if m.group(7) else None


# Date and time in a name: IMG_20210430_094239, PXL_20210430_094239123, VID_20210430_094239,
# 20210430_094239, Screenshot_2021-04-30-09-42-39, "2021-04-30 09.42.39" (Dropbox).
_NAME_DATETIME = re.compile(
    r"(?<!\d)((?:18|19|20)\d{2})([-_.]?)(\d{2})\2(\d{2})[-_ T.]{1,3}(\d{2})([-_.:]?)(\d{2})\6(\d{2})"
)
# Date only: IMG-20210430-WA0001 (WhatsApp), "Photo 2021-04-30".
_NAME_DATE_DASHED = re.compile(r"(?<!\d)((?:18|19|20)\d{2})-(\d{2})-(\d{2})(?!\d)")
_NAME_DATE_PREFIXED = re.compile(r"(?:^|[A-Za-z][-_])((?:18|19|20)\d{2})(\d{2})(\d{2})(?=[-_ .])")


def filename_datetime(name: str) -> datetime | None:
    """The capture time encoded in a file name by phones, messengers and screenshot tools."""
    for m in _NAME_DATETIME.finditer(name):
        y, _, mo, d, h, _, mi, s = m.groups()
        dt = make_datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        if dt is not None:
            return dt
    for pattern in (_NAME_DATE_DASHED, _NAME_DATE_PREFIXED):
        for m in pattern.finditer(name):
            dt = make_datetime(*(int(g) for g in m.groups()))
            if dt is not None:
                return dt
    return None

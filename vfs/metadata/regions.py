"""Moving normalised rectangles from the stored pixel frame to the displayed frame.

EXIF Orientation says how the stored pixels must be transformed to be shown upright. Region
metadata written per the MWG guidelines ("Region metadata is applied to the stored image") must
be put through the same transform, otherwise faces are boxed in the wrong place on every
portrait photo taken with a phone (immich#12440, pigallery2#979).
"""

from __future__ import annotations

from collections.abc import Callable

_Point = tuple[float, float]

# stored (x, y) -> displayed (x, y), normalised 0..1, top-left origin, for EXIF orientations 1..8.
_TRANSFORMS: dict[int, Callable[[float, float], _Point]] = {
    1: lambda x, y: (x, y),
    2: lambda x, y: (1 - x, y),  # mirrored horizontally
    3: lambda x, y: (1 - x, 1 - y),  # rotated 180
    4: lambda x, y: (x, 1 - y),  # mirrored vertically
    5: lambda x, y: (y, x),  # transposed
    6: lambda x, y: (1 - y, x),  # shown rotated 90 clockwise
    7: lambda x, y: (1 - y, 1 - x),  # transversed
    8: lambda x, y: (y, 1 - x),  # shown rotated 90 counter-clockwise
}


def _clamp(v: float) -> float:
    return min(1.0, max(0.0, v))


def to_displayed(
    x: float, y: float, w: float, h: float, orientation: int | None
) -> tuple[float, float, float, float]:
    """Map a top-left-based rectangle in the stored frame to the displayed frame."""
    transform = _TRANSFORMS.get(orientation or 1, _TRANSFORMS[1])
    x1, y1 = transform(x, y)
    x2, y2 = transform(x + w, y + h)
    left, top = _clamp(min(x1, x2)), _clamp(min(y1, y2))
    right, bottom = _clamp(max(x1, x2)), _clamp(max(y1, y2))
    return left, top, right - left, bottom - top


def from_center(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    """MWG areas are centre-based; photovfs regions are top-left based."""
    return cx - w / 2, cy - h / 2, w, h

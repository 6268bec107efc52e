"""The metadata calls ingest needs: `verify`, `extract`, `media_kind`.

They come from `photovfs.metadata` (owned by the metadata engineer). Until that package exports
`extract`/`verify`, a small fallback keeps ingest working: a full Pillow decode for stills, a
container parse for video, and the EXIF date, camera and Apple content identifier.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..errors import BadMedia
from ..metadata.facts import Facts
from ..metadata.kinds import HEIF_EXTS, QUICKTIME_EXTS, RAW_EXTS, ext_of, media_kind

SIDECAR_EXTS = ("xmp", "aae")

_extract: Callable[[Path, Path | None], Facts] | None
_verify: Callable[[Path], None] | None
try:  # the real thing, once the metadata package exports it
    from ..metadata import extract as _extract  # type: ignore[attr-defined]
    from ..metadata import verify as _verify  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the other engineer's progress
    _extract = _verify = None


def is_sidecar(name: str) -> bool:
    return ext_of(name) in SIDECAR_EXTS


def verify(path: Path) -> None:
    """Raise BadMedia (or TooLarge) unless the file decodes (stills) or parses (video)."""
    if _verify is not None:
        _verify(path)
        return
    _fallback_verify(path)


def extract(path: Path, sidecar: Path | None = None) -> Facts:
    if _extract is not None:
        return _extract(path, sidecar)
    return _fallback_extract(path)


def _fallback_verify(path: Path) -> None:
    kind = media_kind(path.name)
    if kind is None:
        raise BadMedia("not a photo or video")
    ext = ext_of(path.name)
    size = path.stat().st_size
    if size == 0:
        raise BadMedia("empty file")
    if kind[0] == "video":
        from ..metadata.video import BadContainer, read_avi, read_quicktime

        try:
            with open(path, "rb") as fh:
                if ext in QUICKTIME_EXTS:
                    info = read_quicktime(fh, size)
                    if not info.has_moov:
                        raise BadContainer("the video has no movie header (truncated?)")
                elif ext == "avi":
                    read_avi(fh)
        except BadContainer as exc:
            raise BadMedia(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - any parser crash means a damaged file
            raise BadMedia(f"damaged video: {exc}") from exc
        return
    if ext in RAW_EXTS:
        return  # RAW decoding is not available; the container is accepted as is
    from PIL import Image

    if ext in HEIF_EXTS:
        import pillow_heif

        pillow_heif.register_heif_opener()
    try:
        with Image.open(path) as im:
            im.load()
    except Image.DecompressionBombError as exc:
        from ..errors import TooLarge

        raise TooLarge(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001
        raise BadMedia(f"the image does not decode: {exc}") from exc
    if ext in ("jpg", "jpeg", "jpe"):
        from ..metadata.jpeg import jpeg_problem

        problem = jpeg_problem(path)
        if problem:
            raise BadMedia(problem)


def _fallback_extract(path: Path) -> Facts:
    kind = media_kind(path.name) or ("other", "application/octet-stream")
    facts = Facts(media_type=kind[0], mime=kind[1])
    ext = ext_of(path.name)
    try:
        if kind[0] == "image" and ext not in RAW_EXTS:
            from PIL import Image

            from ..metadata.exif import from_pillow

            if ext in HEIF_EXTS:
                import pillow_heif

                pillow_heif.register_heif_opener()
            with Image.open(path) as im:
                facts.width, facts.height = im.size
                info = from_pillow(im)
            facts.make, facts.model, facts.orientation = info.make, info.model, info.orientation
            facts.lat, facts.lon, facts.content_id = info.lat, info.lon, info.content_id
            text = info.datetime_original or info.datetime_digitized or info.datetime
            if text:
                facts.taken_at = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
                facts.taken_source = "exif:DateTimeOriginal"
        elif kind[0] == "video" and ext in QUICKTIME_EXTS:
            from ..metadata.video import read_quicktime

            with open(path, "rb") as fh:
                video = read_quicktime(fh, path.stat().st_size)
            facts.duration, facts.content_id = video.duration, video.content_id
            facts.width, facts.height = video.width, video.height
            if video.local_date:
                facts.taken_at = video.local_date[0]
            elif video.created_utc:
                facts.taken_at = video.created_utc
            facts.taken_source = "quicktime" if facts.taken_at else None
    except Exception:  # noqa: BLE001 - facts are best effort; verify already decided
        pass
    if facts.taken_at is None:
        facts.taken_at = datetime.fromtimestamp(path.stat().st_mtime)
        facts.taken_source = "mtime"
    return facts


__all__ = ["extract", "is_sidecar", "media_kind", "verify"]

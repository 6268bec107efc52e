"""Renditions on real files: generated images (Pillow, pillow-heif, ffmpeg) and the shared corpus.

No mocks: single-flight is observed through `Renditions.render_fn`/`renders`, the hook the class exposes.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import pillow_heif
import pytest
from photovfs.errors import BadMedia, NotFound, TooLarge
from photovfs.thumbs import RENDER_VERSION, Renditions, render, thumb_name
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat

MAX_PIXELS = 120_000_000
SHA_A = "a" * 64
SHA_B = "b" * 64

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

QUADRANTS = ((230, 30, 30), (30, 200, 40), (40, 60, 220), (240, 220, 40))  # TL, TR, BL, BR


def quadrant_image(width: int = 480, height: int = 320) -> Image.Image:
    """Four distinct corner colours: every one of the 8 EXIF orientations maps it differently."""
    img = Image.new("RGB", (width, height))
    hw, hh = width // 2, height // 2
    for (x, y), colour in zip(((0, 0), (hw, 0), (0, hh), (hw, hh)), QUADRANTS, strict=True):
        img.paste(colour, (x, y, x + hw, y + hh))
    img.paste((255, 255, 255), (0, 0, width // 8, height // 8))  # an extra off-centre mark
    return img


# What the file must store so that ImageOps.exif_transpose (i.e. a correct viewer) shows `upright`.
STORED_FOR = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def write_oriented_jpeg(path: Path, upright: Image.Image, orientation: int) -> None:
    method = STORED_FOR[orientation]
    stored = upright.transpose(method) if method is not None else upright.copy()
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=95, exif=exif.tobytes())


def mean_diff(a: Image.Image, b: Image.Image, grid: tuple[int, int] = (24, 24)) -> float:
    """Mean absolute difference on a coarse grid: tolerant of resampling and JPEG noise."""
    a = a.convert("RGB").resize(grid, Image.Resampling.BOX)
    b = b.convert("RGB").resize(grid, Image.Resampling.BOX)
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def displayed(path: Path) -> Image.Image:
    """What a colour-managed viewer shows: exif_transpose, then the embedded ICC profile -> sRGB."""
    with Image.open(path) as original:
        upright = ImageOps.exif_transpose(original).convert("RGB")
        icc = original.info.get("icc_profile")
    if icc:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        upright = ImageCms.profileToProfile(upright, source, ImageCms.createProfile("sRGB"))
    return upright


def open_jpeg(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    img.load()
    return img


def s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)


def swapped_rg_profile() -> bytes:
    """A valid ICC v2 RGB display profile with red and green primaries swapped.

    An image tagged with it and stored as (200, 30, 30) *means* green, so an sRGB conversion that
    honours the profile must output a green pixel; ignoring the profile leaves it red.
    """
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    text = b"swapped RG\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 78
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 0x0233) + b"\0\0"  # gamma 2.2
    tags = [
        (b"desc", desc), (b"wtpt", xyz_tag(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz_tag(*green)),
        (b"gXYZ", xyz_tag(*red)), (b"bXYZ", xyz_tag(*blue)), (b"rTRC", curve), (b"gTRC", curve),
        (b"bTRC", curve), (b"cprt", b"text" + b"\0" * 4 + b"none\0\0\0\0"),
    ]
    table_len = 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", 128 + table_len + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", 128 + table_len + len(body)) + b"\0" * 4 + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28
        + s15(0.9642) + s15(1.0) + s15(0.8249)
    )
    return header + b"\0" * (128 - len(header)) + table + body


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_bomb(path: Path, side: int = 20_000) -> None:
    """A genuine bomb: side x side 1-bit grey, all zero -- 50 MB of pixels in ~50 KB of file."""
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def make_video(path: Path, seconds: float, width: int = 320, height: int = 240) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc=size={width}x{height}:rate=10:duration={seconds}",
         "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")


class CountingRender:
    """Wraps `render` to count real decodes and (optionally) make them slow enough to overlap."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, *args: object, **kwargs: object) -> bytes:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return render(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    quadrant_image(800, 600).save(path, quality=90)
    return path


@pytest.fixture
def rend(tmp_path: Path):
    r = Renditions(tmp_path / "cache", workers=2)
    yield r
    r.close()


# ---------------------------------------------------------------------------------------------
# the pure function
# ---------------------------------------------------------------------------------------------


def test_thumb_name() -> None:
    assert thumb_name("IMG_1234.HEIC") == "IMG_1234.jpg"
    assert thumb_name("a.jpeg") == "a.jpg"
    assert thumb_name("a.JPG") == "a.jpg"
    assert thumb_name("clip.mov") == "clip.jpg"
    assert thumb_name("b.jpg") == "b.jpg"
    assert thumb_name("noext") == "noext.jpg"
    assert thumb_name("my.trip.dng") == "my.trip.jpg"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_upright_pixels(tmp_path: Path, orientation: int) -> None:
    upright = quadrant_image(480, 320)
    src = tmp_path / f"o{orientation}.jpg"
    write_oriented_jpeg(src, upright, orientation)
    with Image.open(src) as original:
        reference = ImageOps.exif_transpose(original)
    assert mean_diff(reference, upright) < 6  # the fixture itself is right

    out = open_jpeg(render(src, "image", 240, max_pixels=MAX_PIXELS))
    assert out.size == (240, 160)
    assert mean_diff(out, reference) < 8
    assert out.getexif().get(0x0112) is None  # no orientation tag: a viewer must not rotate again


def test_longest_side_and_never_upscaled(photo: Path) -> None:
    assert open_jpeg(render(photo, "image", 200, max_pixels=MAX_PIXELS)).size == (200, 150)
    assert open_jpeg(render(photo, "image", 5000, max_pixels=MAX_PIXELS)).size == (800, 600)


def test_portrait_longest_side(tmp_path: Path) -> None:
    src = tmp_path / "tall.png"
    quadrant_image(300, 900).save(src)
    assert open_jpeg(render(src, "image", 300, max_pixels=MAX_PIXELS)).size == (100, 300)


def test_metadata_stripped_but_capture_date_kept(tmp_path: Path) -> None:
    src = tmp_path / "gps.jpg"
    exif = Image.Exif()
    exif[0x010F] = "ACME"
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 10:11:12"
    exif.get_ifd(0x8825)[1] = "N"  # GPSLatitudeRef: a GPS IFD that must not survive
    quadrant_image().save(src, quality=90, exif=exif.tobytes())
    out = open_jpeg(render(src, "image", 128, max_pixels=MAX_PIXELS))
    out_exif = out.getexif()
    assert out_exif.get_ifd(0x8769).get(0x9003) == "2021:07:04 10:11:12"
    assert not out_exif.get_ifd(0x8825)
    assert out_exif.get(0x010F) is None

    from datetime import datetime

    forced = render(src, "image", 128, max_pixels=MAX_PIXELS, taken=datetime(1999, 12, 31, 23, 59))
    assert open_jpeg(forced).getexif().get_ifd(0x8769).get(0x9003) == "1999:12:31 23:59:00"


def test_png_with_icc_profile_is_converted_to_srgb(tmp_path: Path) -> None:
    profile = swapped_rg_profile()
    ImageCms.ImageCmsProfile(io.BytesIO(profile))  # lcms accepts it
    src = tmp_path / "tagged.png"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(src, icc_profile=profile)
    out = open_jpeg(render(src, "image", 100, max_pixels=MAX_PIXELS))
    r, g, b = out.getpixel((50, 40))
    assert g > 150 and r < 80 and b < 80, (r, g, b)


@pytest.mark.parametrize("thumbnail", [False, True])
def test_heic_with_icc_profile_is_converted_to_srgb(tmp_path: Path, thumbnail: bool) -> None:
    src = tmp_path / "tagged.heic"
    plain = Image.new("RGB", (400, 300), (200, 30, 30))
    pillow_heif.from_pillow(plain).save(
        src, quality=95, icc_profile=swapped_rg_profile(), thumbnails=[200] if thumbnail else []
    )
    out = open_jpeg(render(src, "image", 100 if thumbnail else 300, max_pixels=MAX_PIXELS))
    r, g, b = out.getpixel((50, 40))
    assert g > 150 and r < 80 and b < 80, (r, g, b)


def test_cmyk_jpeg_becomes_srgb(tmp_path: Path) -> None:
    src = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(src)  # red ink, no profile
    out = open_jpeg(render(src, "image", 32, max_pixels=MAX_PIXELS))
    r, g, b = out.getpixel((10, 10))
    assert out.mode == "RGB" and r > 180 and g < 80 and b < 80, (r, g, b)


def test_alpha_and_16bit_and_grey_become_8bit_rgb(tmp_path: Path) -> None:
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(rgba)
    out = open_jpeg(render(rgba, "image", 32, max_pixels=MAX_PIXELS))
    assert out.mode == "RGB" and min(out.getpixel((10, 10))) > 240  # transparent -> white

    grey16 = tmp_path / "grey16.png"
    Image.new("I;16", (64, 48), 40000).save(grey16)
    out = open_jpeg(render(grey16, "image", 32, max_pixels=MAX_PIXELS))
    assert out.mode == "RGB" and out.size == (32, 24)


def test_heic_renders(tmp_path: Path) -> None:
    src = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(quadrant_image(640, 480)).save(src, quality=90)
    out = open_jpeg(render(src, "image", 320, max_pixels=MAX_PIXELS))
    assert out.size == (320, 240)
    assert mean_diff(out, quadrant_image(640, 480)) < 8


def test_heic_embedded_thumbnail_used_and_bomb_rule(tmp_path: Path) -> None:
    """Over the pixel limit, a small size may come from the embedded thumbnail; a big one may not."""
    src = tmp_path / "big.heic"
    pillow_heif.from_pillow(quadrant_image(640, 480)).save(src, quality=90, thumbnails=[160])
    small = open_jpeg(render(src, "image", 128, max_pixels=100_000))  # 640x480 > 100k pixels
    assert small.size == (128, 96)
    assert mean_diff(small, quadrant_image(640, 480)) < 10
    with pytest.raises(TooLarge):
        render(src, "image", 320, max_pixels=100_000)
    assert open_jpeg(render(src, "image", 320, max_pixels=MAX_PIXELS)).size == (320, 240)


def test_raw_uses_embedded_preview_and_raw_orientation(tmp_path: Path) -> None:
    """A TIFF-based RAW: tiny IFD0 image tagged orientation 6, a big JPEG preview further in."""
    upright = quadrant_image(600, 400)
    raw = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (16, 16), (128, 128, 128)).save(raw, "TIFF", exif=exif)
    preview = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(preview, "JPEG", quality=90)  # sensor-wise
    src = tmp_path / "DSC_0001.NEF"
    src.write_bytes(raw.getvalue() + b"\0" * 1000 + preview.getvalue() + b"\0" * 100)
    out = open_jpeg(render(src, "image", 300, max_pixels=MAX_PIXELS))
    assert out.size == (300, 200)
    assert mean_diff(out, upright) < 8


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jpg", b""),
        ("random.jpg", os.urandom(4096)),
        ("header_only.jpg", None),  # filled below: the first 300 bytes of a real JPEG
        ("text.png", b"this is not a png\n" * 20),
        ("junk.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + os.urandom(500)),
        ("junk.mp4", b"\0\0\0\x18ftypisom\0\0\0\0isommp41" + os.urandom(500)),
        ("junk.nef", os.urandom(2048)),
        ("image.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
    ],
)
def test_corrupt_files_raise_badmedia(tmp_path: Path, name: str, content: bytes | None) -> None:
    if content is None:
        buf = io.BytesIO()
        quadrant_image().save(buf, "JPEG")
        content = buf.getvalue()[:300]
    src = tmp_path / name
    src.write_bytes(content)
    with pytest.raises(BadMedia):
        render(src, "image", 128, max_pixels=MAX_PIXELS)


def test_missing_original_is_notfound(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        render(tmp_path / "gone.jpg", "image", 128, max_pixels=MAX_PIXELS)


def test_png_bomb_refused_fast(tmp_path: Path) -> None:
    src = tmp_path / "bomb.png"
    write_png_bomb(src)
    assert src.stat().st_size < 200_000
    start = time.perf_counter()
    with pytest.raises(TooLarge):
        render(src, "image", 256, max_pixels=MAX_PIXELS)
    assert time.perf_counter() - start < 10.0  # header-only refusal; a decode would take minutes


@needs_ffmpeg
@pytest.mark.parametrize("seconds", [3.0, 0.3])  # 0.3 s: the -ss 1 seek finds nothing, -ss 0 does
def test_video_poster_frame(tmp_path: Path, seconds: float) -> None:
    src = tmp_path / "clip.mp4"
    make_video(src, seconds)
    out = open_jpeg(render(src, "video", 160, max_pixels=MAX_PIXELS))
    assert out.size == (160, 120)


# ---------------------------------------------------------------------------------------------
# the cache
# ---------------------------------------------------------------------------------------------


def test_key_contains_hash_size_and_version(rend: Renditions) -> None:
    key = rend.key(SHA_A, 256)
    assert SHA_A in key and "256" in key and f"v{RENDER_VERSION}" in key
    assert rend.key(SHA_A, 256) != rend.key(SHA_A, 512) != rend.key(SHA_B, 512)
    with pytest.raises(ValueError):
        rend.key("../../etc/passwd", 256)


def test_get_writes_jpeg_atomically_in_fanout_dir(rend: Renditions, photo: Path) -> None:
    assert rend.cached(SHA_A, 256) is None
    path = rend.get(photo, SHA_A, "image", 256)
    key = rend.key(SHA_A, 256)
    assert path == rend.cache_dir / key[:2] / f"{key}.jpg"
    assert rend.cached(SHA_A, 256) == path
    assert open_jpeg(path.read_bytes()).size == (256, 192)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind


def test_single_flight_50_threads_one_render(rend: Renditions, photo: Path) -> None:
    counter = CountingRender(delay=0.3)
    rend.render_fn = counter
    barrier = threading.Barrier(50)
    results: list[Path | BaseException] = []

    def ask() -> None:
        barrier.wait()
        try:
            results.append(rend.get(photo, SHA_A, "image", 512))
        except BaseException as exc:  # pragma: no cover - reported by the assert below
            results.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 50 and len(set(results)) == 1 and isinstance(results[0], Path)
    assert counter.calls == 1 and rend.renders == 1


def test_cache_survives_new_instance(tmp_path: Path, photo: Path) -> None:
    first = Renditions(tmp_path / "cache")
    path = first.get(photo, SHA_A, "image", 300)
    first.close()
    mtime = path.stat().st_mtime_ns
    time.sleep(0.02)
    second = Renditions(tmp_path / "cache")
    counter = CountingRender()
    second.render_fn = counter
    assert second.get(photo, SHA_A, "image", 300) == path
    assert second.get_bytes(photo, SHA_A, "image", 300) == path.read_bytes()
    assert counter.calls == 0 and second.renders == 0
    assert path.stat().st_mtime_ns == mtime
    second.close()


def test_changed_sha_makes_new_file(rend: Renditions, photo: Path) -> None:
    old = rend.get(photo, SHA_A, "image", 256)
    quadrant_image(800, 600).transpose(Image.Transpose.ROTATE_180).save(photo)  # "edited"
    new = rend.get(photo, SHA_B, "image", 256)
    assert new != old and old.exists() and new.exists()
    assert mean_diff(open_jpeg(new.read_bytes()), open_jpeg(old.read_bytes())) > 30


def test_get_bytes_memory_lru(rend: Renditions, photo: Path) -> None:
    data = rend.get_bytes(photo, SHA_A, "image", 128)
    rend.cached(SHA_A, 128).unlink()  # type: ignore[union-attr]
    assert rend.get_bytes(photo, SHA_A, "image", 128) == data  # served from memory
    big = rend.get_bytes(photo, SHA_A, "image", 700)  # > 512: not kept in memory
    rend.cached(SHA_A, 700).unlink()  # type: ignore[union-attr]
    assert rend.get_bytes(photo, SHA_A, "image", 700) == big and rend.renders == 2 + 1


def test_failures_are_remembered(rend: Renditions, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    for _ in range(3):
        with pytest.raises(BadMedia):
            rend.get(bad, SHA_A, "image", 256)
    assert rend.renders == 1


def test_ensure_many_parallel_errors_returned(rend: Renditions, tmp_path: Path) -> None:
    items = []
    for i in range(6):
        src = tmp_path / f"p{i}.jpg"
        quadrant_image(400 + i * 10, 300).save(src)
        items.append((src, f"{i:064x}", "image"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    items.append((bad, "f" * 64, "image"))
    items.append(items[0])  # duplicates are rendered once
    result = rend.ensure_many(items, 200)
    assert len(result) == 7
    assert isinstance(result["f" * 64], BadMedia)
    for src, sha, _ in items[:6]:
        assert isinstance(result[sha], Path) and result[sha].exists(), src
    assert rend.renders == 7


def test_eviction_respects_cap(tmp_path: Path) -> None:
    r = Renditions(tmp_path / "cache", cap_bytes=10**9)
    paths = []
    for i in range(6):
        src = tmp_path / f"p{i}.jpg"
        quadrant_image(800, 600).rotate(i * 10).save(src)
        path = r.get(src, f"{i + 1:064x}", "image", 400)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))  # p0 least recently used
        paths.append(path)
    stale = r.cache_dir / "aa" / ".tmp-dead.jpg"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"x" * 10)
    os.utime(stale, (1, 1))
    sizes = [p.stat().st_size for p in paths]
    r.cap_bytes = sum(sizes[3:])
    freed = r.evict()
    assert freed == sum(sizes[:3]) + 10
    assert [p.exists() for p in paths] == [False] * 3 + [True] * 3
    assert not stale.exists()
    assert r.evict() == 0
    r.close()


def test_automatic_eviction_after_writes(tmp_path: Path, photo: Path) -> None:
    """Writes past the cap evict older renditions, never the one just made (its path is returned)."""
    r = Renditions(tmp_path / "cache", cap_bytes=1)
    first = r.get(photo, SHA_A, "image", 64)
    assert first.exists()
    second = r.get(photo, SHA_B, "image", 64)
    assert second.exists() and not first.exists()
    assert list((tmp_path / "cache").rglob("*.jpg")) == [second]
    r.close()


@pytest.mark.parametrize("leftover", ["empty", "cut short", "zero tail", "not a jpeg"])
def test_rendition_cut_short_by_a_power_cut_is_made_again_never_served(
    rend: Renditions, photo: Path, leftover: str
) -> None:
    """Renditions are renamed into place without fsync: what a power cut can leave under the real
    name (an empty or truncated file) counts as missing, and the next request replaces it."""
    whole = rend.get(photo, SHA_A, "image", 300).read_bytes()
    broken = {
        "empty": b"",
        "cut short": whole[: len(whole) // 2],
        "zero tail": whole[:-4096] + b"\x00" * 4096,
        "not a jpeg": b"\x00" * len(whole),
    }[leftover]
    path = rend.cached(SHA_A, 300)
    assert path is not None
    path.write_bytes(broken)
    assert rend.cached(SHA_A, 300) is None
    counter = CountingRender()
    rend.render_fn = counter
    again = rend.get(photo, SHA_A, "image", 300)
    assert again == path and counter.calls == 1
    assert again.read_bytes() == whole  # deterministic: the size a listing reported still holds
    assert rend.cached(SHA_A, 300) == path


def test_capture_date_segment_is_byte_identical_to_pillows() -> None:
    """The EXIF date is built by hand (no Pillow import per worker); the bytes must not change,
    or every cached rendition would differ from a new one under the same key."""
    from photovfs.thumbs import _exif_date_payload

    for stamp in ("2021:07:04 10:11:12", "999:12:31 23:59:00", "abcd", ""):
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = stamp
        assert _exif_date_payload(stamp) == exif.tobytes(), stamp


def test_render_to_publishes_a_whole_jpeg_and_reports_failures(tmp_path: Path, photo: Path) -> None:
    """The pre-generation worker's entry point: a whole JPEG at `dest`, no temp file; a corrupt
    original is a reason string, never an exception that would kill the pool."""
    from photovfs.thumbs import render_to, whole_jpeg

    dest = tmp_path / "cache" / "ab" / "x.jpg"
    nbytes, reason = render_to(str(photo), "image", 200, MAX_PIXELS, str(dest))
    assert reason == "" and nbytes == dest.stat().st_size and whole_jpeg(dest) is not None
    assert [p.name for p in dest.parent.iterdir()] == ["x.jpg"]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    nbytes, reason = render_to(str(bad), "image", 200, MAX_PIXELS, str(tmp_path / "y.jpg"))
    assert nbytes == 0 and reason.startswith("BadMedia") and not (tmp_path / "y.jpg").exists()


def test_pregeneration_workers_share_the_cores_instead_of_a_libvips_thread_each() -> None:
    """The pool supplies the parallelism; libvips' own thread per core in every worker made two
    workers fight for two cores. As many workers as cores: libvips single-threaded in each."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import pyvips
    from photovfs.thumbs import worker_init

    ctx = multiprocessing.get_context("spawn")
    as_many = os.cpu_count() or 1
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=worker_init,
                             initargs=(0, as_many)) as pool:
        assert pool.submit(pyvips.concurrency_get).result(timeout=60) == 1


# ---------------------------------------------------------------------------------------------
# the shared corpus
# ---------------------------------------------------------------------------------------------


def corpus_root() -> Path | None:
    env = os.environ.get("PHOTOVFS_CORPUS")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "corpus"
    return root if (root / "MANIFEST.tsv").is_file() else None


CORPUS = corpus_root()
corpus = pytest.mark.skipif(
    CORPUS is None, reason="corpus not found (../shared/corpus or $PHOTOVFS_CORPUS)"
)


def manifest() -> list[dict[str, str]]:
    if CORPUS is None:
        return []
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def corpus_cases() -> list[tuple[str, int | None]]:
    """(relative path, longest side of the original or None) for every file that must render."""
    cases: dict[str, int | None] = {}
    for row in manifest():
        rel = row["relative_path"]
        dims = row.get("dimensions") or ""
        longest = max(int(v) for v in dims.split("x")) if "x" in dims else None
        pillow_ok = row["opens_with_pillow"].startswith("yes")
        is_heic = rel.startswith("heic/")
        is_video = rel.startswith("other/video/")
        if pillow_ok or is_heic or is_video:
            cases[rel] = longest
    return sorted(cases.items())


CORPUS_SIZE = 256


@corpus
@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "longest"), corpus_cases() or [("-", None)])
def test_corpus_renders(rel: str, longest: int | None) -> None:
    assert CORPUS is not None
    media = "video" if rel.startswith("other/video/") else "image"
    data = render(CORPUS / rel, media, CORPUS_SIZE, max_pixels=MAX_PIXELS)
    out = open_jpeg(data)
    assert out.mode == "RGB"
    assert max(out.size) == min(CORPUS_SIZE, longest or CORPUS_SIZE), out.size


@corpus
@pytest.mark.corpus
def test_corpus_orientation_set_is_upright() -> None:
    assert CORPUS is not None
    files = sorted((CORPUS / "jpeg" / "orientation").glob("*.jpg"))
    assert len(files) >= 16
    for src in files:  # 2..8 carry an ICC profile that 1 lacks: compare what a viewer displays
        reference = displayed(src)
        out = open_jpeg(render(src, "image", 200, max_pixels=MAX_PIXELS))
        assert max(out.size) == 200
        assert abs(out.width / out.height - reference.width / reference.height) < 0.02, src.name
        assert mean_diff(out, reference) < 8, src.name


@corpus
@pytest.mark.corpus
def test_corpus_heic_thumbnail_path_matches_full_decode() -> None:
    """The embedded-thumbnail shortcut must give the same upright picture as the full decode."""
    assert CORPUS is not None
    for name in ("arrow.heic", "IMG_1034.heic", "samsung-one-ui-6.heic"):
        small = open_jpeg(render(CORPUS / "heic" / name, "image", 256, max_pixels=MAX_PIXELS))
        large = open_jpeg(render(CORPUS / "heic" / name, "image", 1024, max_pixels=MAX_PIXELS))
        assert max(large.size) == 1024
        assert mean_diff(small, large) < 10, name


@corpus
@pytest.mark.corpus
def test_corpus_200mp_heic_is_bounded() -> None:
    """Small sizes come from its 512 px embedded thumbnail; a display size is refused, quickly."""
    assert CORPUS is not None
    src = CORPUS / "heic" / "200MP.heic"
    assert max(open_jpeg(render(src, "image", 256, max_pixels=MAX_PIXELS)).size) == 256
    start = time.perf_counter()
    with pytest.raises(TooLarge):
        render(src, "image", 1920, max_pixels=MAX_PIXELS)
    assert time.perf_counter() - start < 10  # refused from the header; decoding 200 MP would take ~40 s


@corpus
@pytest.mark.corpus
def test_corpus_bad_files_render_or_fail_cleanly() -> None:
    assert CORPUS is not None
    bad = sorted(p for p in (CORPUS / "bad").iterdir() if p.is_file())
    assert bad
    for src in bad:
        try:
            data = render(src, "image", CORPUS_SIZE, max_pixels=MAX_PIXELS)
        except (BadMedia, TooLarge):
            continue
        assert open_jpeg(data).mode == "RGB", src.name

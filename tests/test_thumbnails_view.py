"""thumbnails/ mirrors the views with upright JPEG renditions whose listed sizes are exact."""

from __future__ import annotations

from datetime import datetime

from conftest import jpeg_with_date
from photovfs.config import load_config
from photovfs.library import Library
from PIL import Image


def test_thumbnail_listing_reports_exact_sizes_of_real_jpegs(photo_dir, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[thumbnails]\nview_size = 32\n")
    lib = Library(load_config(photo_dir, config_file=cfg))
    lib.scan()
    assert [n.name for n in lib.list("thumbnails")] == [
        "by-date", "by-person", "by-place", "by-album", "originals"]
    nodes = lib.list("thumbnails/by-date/2021/04/30")
    assert [n.name for n in nodes] == ["IMG_0001 (2).jpg", "IMG_0001.jpg", "IMG_0002.jpg"]
    for node in nodes:
        with lib.open_read(node.path) as fh:
            data = fh.read()
        assert len(data) == node.size and node.content_type == "image/jpeg"
        assert max(Image.open(fh.name).size) == 32
    assert lib.resolve("thumbnails/by-date/2021/04/30/IMG_0002.jpg").size == nodes[2].size
    lib.close()


def test_a_heic_gets_a_jpg_name_and_a_rotated_photo_comes_out_upright(tmp_path):
    import pillow_heif

    root = tmp_path / "lib"
    root.mkdir()
    pillow_heif.register_heif_opener()
    Image.new("RGB", (80, 40), (0, 128, 255)).save(root / "IMG_1234.HEIC", format="HEIF")
    jpeg_with_date(root / "turned.jpg", datetime(2020, 1, 1), size=(80, 40), orientation=6)
    lib = Library.open(root)
    lib.scan()
    names = {n.name: n for n in lib.list("thumbnails/originals")}
    assert set(names) == {"IMG_1234.jpg", "turned.jpg"}
    with Image.open(names["turned.jpg"].source) as im:
        assert im.size[0] < im.size[1]  # 80x40 stored, shown 40x80
    lib.close()


def test_a_corrupt_original_is_left_out_of_the_mirror_not_an_error(photo_dir):
    broken = photo_dir / "old" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    lib = Library.open(photo_dir)
    lib.scan()
    names = [n.name for n in lib.list("thumbnails/originals/old")]
    assert names == ["scan.jpg"]
    lib.close()

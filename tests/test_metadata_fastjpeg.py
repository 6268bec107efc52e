"""The JPEG fast path (vfs/metadata/fastjpeg.py, used by scans) must give exactly the facts of the
general Pillow + exifread path, on real files and on damaged ones: it copies Pillow's rules, and
this pins it to them."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from photovfs.metadata.extract import _extract, extract, hash_and_extract, read_once
from photovfs.metadata.kinds import media_kind

CORPUS = Path(
    os.environ.get("PHOTOVFS_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus"
)
needs_corpus = pytest.mark.skipif(not (CORPUS / "MANIFEST.tsv").is_file(),
                                  reason=f"corpus not found at {CORPUS} (set PHOTOVFS_CORPUS)")


def _media(root: Path) -> list[Path]:
    return sorted(Path(d) / f for d, _, fs in os.walk(root) for f in fs if media_kind(f))


def _differences(old, new) -> dict:
    return {k: (getattr(old, k), getattr(new, k)) for k in old.__dataclass_fields__
            if getattr(old, k) != getattr(new, k)}


@needs_corpus
def test_every_corpus_file_gives_the_same_facts_and_hash_on_the_one_read_path():
    files = _media(CORPUS)
    fast = 0
    for f in files:
        old = _extract(f, None, None)  # the general path: Pillow + exifread
        digest, once = hash_and_extract(f)
        assert digest == hashlib.sha256(f.read_bytes()).hexdigest(), f
        assert _differences(old, extract(f)) == {}, f
        assert _differences(old, once) == {}, f
        fast += read_once(f).jpeg is not None
    assert fast >= 20  # the fast path really ran on the corpus's plain JPEGs


@needs_corpus
def test_damaged_and_truncated_jpegs_give_the_same_facts_on_both_paths(tmp_path: Path):
    rng = random.Random(20261123)
    sources = [f for f in _media(CORPUS) if f.suffix.lower() in (".jpg", ".jpeg")][:40]
    checked = 0
    for src in sources:
        data = src.read_bytes()
        exif_at = data.find(b"Exif\0\0")
        for k in range(6):
            b = bytearray(data)
            kind = rng.random()
            if kind < 0.5 and exif_at > 0:  # flip bytes inside the EXIF block
                for _ in range(rng.randint(1, 4)):
                    i = exif_at + rng.randrange(0, min(2000, len(b) - exif_at))
                    b[i] = rng.randrange(256)
            elif kind < 0.75:  # anywhere in the headers
                for _ in range(rng.randint(1, 3)):
                    b[rng.randrange(0, min(len(b), 70000))] = rng.randrange(256)
            else:  # cut short
                b = b[:rng.randrange(2, len(b))]
            f = tmp_path / f"{src.stem}-{k}.jpg"
            f.write_bytes(bytes(b))
            assert _differences(_extract(f, None, None), extract(f)) == {}, (src, kind)
            checked += 1
    assert checked == len(sources) * 6

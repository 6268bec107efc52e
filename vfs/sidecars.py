"""No lock-in: people, face regions, albums and keywords written to XMP sidecars other tools read.

A sidecar `IMG_1234.jpg.xmp` (digiKam / darktable naming; an existing Lightroom-style `IMG_1234.xmp`
is updated instead) carries MWG face regions, `digiKam:TagsList` (`People/NAME`,
`photovfs/Albums/A/B`), `lr:hierarchicalSubject` (`People|NAME`, `photovfs|Albums|A|B`) and
`dc:subject`. Deleting the whole state folder and rescanning brings every name and album back.

A sidecar another tool wrote is merged, not replaced: only the properties listed in MANAGED are
rewritten, everything else in it (ratings, labels, captions) is kept. Sidecars are written after a
short delay by a background thread (`mark`), so adding 10,000 photos to an album stays fast;
`flush()` writes everything pending now. Originals on read-only media: sidecars go to
STATE/sidecars/ with the same relative path, and the scan reads them from there.
"""

from __future__ import annotations

import logging
import os
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select, update

from .catalog.models import (
    STATUS_TRASHED,
    Album,
    AlbumAsset,
    Asset,
    AssetKeyword,
    AssetPerson,
    Keyword,
    Person,
)
from .files import fsync_dir, write_atomic
from .metadata.regions import to_displayed
from .metadata.xmp import NS, RDF

if TYPE_CHECKING:
    from .library import Library

log = logging.getLogger(__name__)
X = "adobe:ns:meta/"
MANAGED = {
    f"{{{NS['mwg-rs']}}}Regions", f"{{{NS['digiKam']}}}TagsList",
    f"{{{NS['lr']}}}hierarchicalSubject", f"{{{NS['dc']}}}subject",
}
# displayed -> stored is the inverse orientation transform
_INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}
for _prefix, _uri in {**NS, "rdf": RDF, "x": X}.items():
    ET.register_namespace(_prefix, _uri)


def _q(prefix: str, name: str) -> str:
    return f"{{{RDF if prefix == 'rdf' else NS[prefix]}}}{name}"


def sidecar_path(lib: Library, asset: Asset) -> Path:
    """Where the asset's sidecar lives (an existing `IMG.xmp` is reused)."""
    original = lib.original_path(asset.folder, asset.filename)
    for cand in (original.with_name(original.name + ".xmp"), original.with_suffix(".xmp")):
        if cand.exists():
            return cand
    if os.access(original.parent, os.W_OK):
        return original.with_name(original.name + ".xmp")
    return state_sidecar(lib, asset.folder, asset.filename)


def state_sidecar(lib: Library, folder: str, filename: str) -> Path:
    rel = f"{folder}/{filename}.xmp" if folder else f"{filename}.xmp"
    return lib.config.state_dir / "sidecars" / rel


def _bag(parent: ET.Element, tag: str, items: list[str], kind: str = "Bag") -> None:
    holder = ET.SubElement(parent, tag)
    bag = ET.SubElement(holder, _q("rdf", kind))
    for item in items:
        ET.SubElement(bag, _q("rdf", "li")).text = item


def _regions(parent: ET.Element, asset: Asset, regions: list[tuple[str, tuple]]) -> None:
    root = ET.SubElement(parent, _q("mwg-rs", "Regions"), {_q("rdf", "parseType"): "Resource"})
    if asset.width and asset.height:
        ET.SubElement(root, _q("mwg-rs", "AppliedToDimensions"), {
            f"{{{NS['stDim']}}}w": str(asset.width), f"{{{NS['stDim']}}}h": str(asset.height),
            f"{{{NS['stDim']}}}unit": "pixel"})
    bag = ET.SubElement(ET.SubElement(root, _q("mwg-rs", "RegionList")), _q("rdf", "Bag"))
    for name, (x, y, w, h) in regions:
        # the catalog keeps the displayed frame; MWG regions apply to the stored image
        sx, sy, sw, sh = to_displayed(x, y, w, h, _INVERSE.get(asset.orientation or 1, 1))
        li = ET.SubElement(bag, _q("rdf", "li"), {_q("rdf", "parseType"): "Resource"})
        ET.SubElement(li, _q("mwg-rs", "Area"), {
            f"{{{NS['stArea']}}}x": f"{sx + sw / 2:.6f}", f"{{{NS['stArea']}}}y": f"{sy + sh / 2:.6f}",
            f"{{{NS['stArea']}}}w": f"{sw:.6f}", f"{{{NS['stArea']}}}h": f"{sh:.6f}",
            f"{{{NS['stArea']}}}unit": "normalized"})
        ET.SubElement(li, _q("mwg-rs", "Name")).text = name
        ET.SubElement(li, _q("mwg-rs", "Type")).text = "Face"


#: the three questions asked of every asset whose sidecar is written, built once: an album add
#: of 10,000 photos writes 10,000 sidecars, and building a statement costs more than running it
_LINKS = (select(Person.name, AssetPerson.x, AssetPerson.y, AssetPerson.w, AssetPerson.h)
          .join(Person, Person.id == AssetPerson.person_id)
          .where(AssetPerson.asset_id == bindparam("aid"), AssetPerson.rejected.is_(False),
                 Person.name.is_not(None), Person.trashed.is_(False)))
_ALBUMS = (select(Album.path).join(AlbumAsset, AlbumAsset.album_id == Album.id)
           .where(AlbumAsset.asset_id == bindparam("aid"), Album.trashed.is_(False)))
_WORDS = (select(Keyword.name).join(AssetKeyword, AssetKeyword.keyword_id == Keyword.id)
          .where(AssetKeyword.asset_id == bindparam("aid")))


_NOTE_MTIME = (update(Asset).where(Asset.id == bindparam("aid"))
               .values(sidecar_mtime_ns=bindparam("m")))


def _facts(lib: Library, s, asset: Asset) -> tuple[list[str], list[tuple], list[str], list[str]]:
    c, aid = s.connection(), {"aid": asset.id}
    links = c.execute(_LINKS, aid).all()
    people = sorted({r.name for r in links})
    regions, seen = [], set()
    for r in links:
        if r.x is not None and r.w and (r.name, r.x, r.y) not in seen:
            seen.add((r.name, r.x, r.y))
            regions.append((r.name, (r.x, r.y, r.w, r.h)))
    albums = sorted(c.execute(_ALBUMS, aid).scalars())
    words = sorted(c.execute(_WORDS, aid).scalars())
    return people, regions, albums, words


def _document(path: Path) -> ET.ElementTree[ET.Element] | None:
    """The existing sidecar with our managed properties removed, or a new empty one."""
    if not path.exists():
        root = ET.Element(f"{{{X}}}xmpmeta")
        ET.SubElement(root, _q("rdf", "RDF"))
        return ET.ElementTree(root)
    try:
        text = path.read_bytes()
        if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
            return None
        tree: ET.ElementTree[ET.Element] = ET.ElementTree(ET.fromstring(text))
    except (OSError, ET.ParseError):
        return None  # a damaged foreign sidecar is left alone
    for desc in tree.getroot().iter(_q("rdf", "Description")):
        for child in list(desc):
            if child.tag in MANAGED:
                desc.remove(child)
    return tree


class _Batch:
    """Sidecars written by one flush: their folders are fsynced once each and their mtimes
    recorded in one transaction at the end (an album add of 10,000 photos touches a few folders
    but 10,000 sidecars; each file is still fsynced before its rename)."""

    def __init__(self) -> None:
        self.folders: set[Path] = set()
        self.mtimes: dict[int, int] = {}

    def finish(self, lib: Library) -> None:
        for folder in sorted(self.folders):
            fsync_dir(folder)
        if self.mtimes:  # our own writes are not changes: one executemany, no ORM loads
            with lib.write() as s:
                s.connection().execute(_NOTE_MTIME, [{"aid": aid, "m": m}
                                                     for aid, m in self.mtimes.items()])


def write_sidecar(lib: Library, asset_id: int, batch: _Batch | None = None) -> Path | None:
    """Write (or merge into) the sidecar of one asset; returns its path, None when skipped.
    With `batch`, the folder fsync and the catalog note are left to `batch.finish`."""
    with lib.session() as s:
        asset = s.get(Asset, asset_id)
        if asset is None or asset.status == STATUS_TRASHED:
            return None
        people, regions, albums, words = _facts(lib, s, asset)
        path = sidecar_path(lib, asset)
    if not path.exists() and not (people or albums or words):
        return None  # nothing to say: do not litter the library with empty sidecars
    tree = _document(path)
    if tree is None:
        log.warning("not touching unreadable sidecar %s", path)
        return None
    rdf = tree.getroot() if tree.getroot().tag == _q("rdf", "RDF") else \
        tree.getroot().find(_q("rdf", "RDF"))
    if rdf is None:
        return None
    desc = ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})
    if regions:
        _regions(desc, asset, regions)
    tags_dk = [f"People/{p}" for p in people] + [f"photovfs/Albums/{a}" for a in albums] + words
    tags_lr = [f"People|{p}" for p in people] + \
        [f"photovfs|Albums|{a.replace('/', '|')}" for a in albums] + words
    if tags_dk:
        _bag(desc, _q("digiKam", "TagsList"), tags_dk, "Seq")
        _bag(desc, _q("lr", "hierarchicalSubject"), tags_lr)
    if people or words:
        _bag(desc, _q("dc", "subject"), sorted(set(people) | set(words)))
    _write_atomic(path, ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True),
                  fsync_folder=batch is None)
    if batch is not None:
        batch.folders.add(path.parent)
        batch.mtimes[asset_id] = path.stat().st_mtime_ns
        return path
    with lib.write() as s:
        row = s.get(Asset, asset_id)
        if row is not None:
            row.sidecar_mtime_ns = path.stat().st_mtime_ns  # our own write is not a change
    return path


def _write_atomic(path: Path, data: bytes, *, fsync_folder: bool = True) -> None:
    write_atomic(path, data, prefix=f".{path.name}.photovfs-", fsync_folder=fsync_folder)


class SidecarWriter:
    """Writes sidecars of changed assets shortly after the change, off the request thread."""

    def __init__(self, lib: Library, delay: float = 0.5) -> None:
        self.lib, self.delay = lib, delay
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        #: held while writing, so that `flush()` from `Library.close()` waits for a write the
        #: timer thread has under way instead of returning while it still uses the catalog
        self._writing = threading.Lock()
        self._timer: threading.Timer | None = None

    @property
    def enabled(self) -> bool:
        return self.lib.config.xmp.write_sidecars

    def mark(self, asset_ids) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._pending.update(a for a in asset_ids if a is not None)
            if self._timer is None:
                self._timer = threading.Timer(self.delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> int:
        """Write every pending sidecar now; returns once no write is under way."""
        with self._writing:
            with self._lock:
                ids, self._pending = sorted(self._pending), set()
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = None
            written, batch = 0, _Batch()
            try:
                for aid in ids:
                    try:
                        written += write_sidecar(self.lib, aid, batch) is not None
                    except OSError as exc:
                        log.warning("sidecar of asset %s not written: %s", aid, exc)
            finally:
                try:
                    batch.finish(self.lib)
                except OSError as exc:
                    log.warning("sidecar folders not synced: %s", exc)
            return written

    def export_all(self) -> int:
        """`photovfs export-metadata`: write every asset's sidecar now."""
        with self.lib.session() as s:
            ids = list(s.scalars(select(Asset.id).where(Asset.status != STATUS_TRASHED)))
        self.mark(ids)
        return self.flush()

"""No lock-in: people, face regions, albums and keywords written to XMP sidecars other tools read.

A sidecar `IMG_1234.jpg.xmp` (digiKam / darktable naming; an existing Lightroom-style `IMG_1234.xmp`
is updated instead) carries MWG face regions, `digiKam:TagsList` (`People/NAME`,
`photovfs/Albums/A/B`), `lr:hierarchicalSubject` (`People|NAME`, `photovfs|Albums|A|B`) and
`dc:subject`. Deleting the whole state folder and rescanning brings every name and album back.

A sidecar another tool wrote is merged, not replaced: only the properties listed in MANAGED are
rewritten, everything else in it (ratings, labels, captions) is kept. Sidecars are written by a
background thread once changes pause for half a second (`mark`), and at the latest a few seconds
after the first pending change, so a burst of 10,000 album adds is not slowed by writing sidecars
in the same process between its requests; `flush()` writes everything pending now. The catalog is
the truth: a sidecar lost to a crash before it was written is rewritten by `photovfs
export-metadata`, and a rescan only adds albums from sidecars, never removes them. Originals on
read-only media: sidecars go to STATE/sidecars/ with the same relative path, and the scan reads
them from there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


#: what a sidecar says about a batch of assets: their files and dimensions, then their people,
#: albums and keywords, one query each for the whole batch (built once: an album add of 10,000
#: photos writes 10,000 sidecars, and four questions per sidecar cost more than writing it)
_ASSETS = select(Asset.id, Asset.folder, Asset.filename, Asset.status, Asset.width, Asset.height,
                 Asset.orientation).where(Asset.id.in_(bindparam("ids", expanding=True)))
_LINKS = (select(AssetPerson.asset_id, Person.name, AssetPerson.x, AssetPerson.y, AssetPerson.w,
                 AssetPerson.h)
          .join(Person, Person.id == AssetPerson.person_id)
          .where(AssetPerson.asset_id.in_(bindparam("ids", expanding=True)),
                 AssetPerson.rejected.is_(False), Person.name.is_not(None),
                 Person.trashed.is_(False)))
_ALBUMS = (select(AlbumAsset.asset_id, Album.path)
           .join(AlbumAsset, AlbumAsset.album_id == Album.id)
           .where(AlbumAsset.asset_id.in_(bindparam("ids", expanding=True)),
                  Album.trashed.is_(False)))
_WORDS = (select(AssetKeyword.asset_id, Keyword.name)
          .join(AssetKeyword, AssetKeyword.keyword_id == Keyword.id)
          .where(AssetKeyword.asset_id.in_(bindparam("ids", expanding=True))))
#: assets per batch of questions (SQLite allows 32,766 bound values; a batch's sidecars are
#: then written together)
BATCH = 256


_NOTE_MTIME = (update(Asset).where(Asset.id == bindparam("aid"))
               .values(sidecar_mtime_ns=bindparam("m")))


@dataclass
class _Facts:
    """What the catalog says about one asset, as its sidecar records it."""

    asset: Any  # a Core row of _ASSETS
    people: list[str] = field(default_factory=list)
    regions: list[tuple[str, tuple]] = field(default_factory=list)
    albums: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def _facts(lib: Library, ids: list[int]) -> list[_Facts]:
    """The facts of the live (not trashed) assets among `ids`, four queries in all."""
    with lib.engine.connect() as c:
        found = {r.id: _Facts(r) for r in c.execute(_ASSETS, {"ids": ids})
                 if r.status != STATUS_TRASHED}
        if not found:
            return []
        live = {"ids": list(found)}
        links, albums, words = defaultdict(list), defaultdict(list), defaultdict(list)
        for r in c.execute(_LINKS, live):
            links[r.asset_id].append(r)
        for aid, path in c.execute(_ALBUMS, live):
            albums[aid].append(path)
        for aid, name in c.execute(_WORDS, live):
            words[aid].append(name)
    for aid, f in found.items():
        f.people = sorted({r.name for r in links[aid]})
        seen: set[tuple] = set()
        for r in links[aid]:
            if r.x is not None and r.w and (r.name, r.x, r.y) not in seen:
                seen.add((r.name, r.x, r.y))
                f.regions.append((r.name, (r.x, r.y, r.w, r.h)))
        f.albums, f.words = sorted(albums[aid]), sorted(words[aid])
    return [found[a] for a in ids if a in found]


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
            with lib.write_core() as c:
                c.execute(_NOTE_MTIME, [{"aid": aid, "m": m} for aid, m in self.mtimes.items()])


def _render(lib: Library, f: _Facts) -> tuple[Path, bytes] | None:
    """The sidecar's path and new bytes, or None when there is nothing to write."""
    path = sidecar_path(lib, f.asset)
    if not (f.people or f.albums or f.words) and not path.exists():
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
    if f.regions:
        _regions(desc, f.asset, f.regions)
    tags_dk = [f"People/{p}" for p in f.people] + [f"photovfs/Albums/{a}" for a in f.albums] + \
        f.words
    tags_lr = [f"People|{p}" for p in f.people] + \
        [f"photovfs|Albums|{a.replace('/', '|')}" for a in f.albums] + f.words
    if tags_dk:
        _bag(desc, _q("digiKam", "TagsList"), tags_dk, "Seq")
        _bag(desc, _q("lr", "hierarchicalSubject"), tags_lr)
    if f.people or f.words:
        _bag(desc, _q("dc", "subject"), sorted(set(f.people) | set(f.words)))
    return path, ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True)


def write_sidecar(lib: Library, asset_id: int, batch: _Batch | None = None) -> Path | None:
    """Write (or merge into) the sidecar of one asset; returns its path, None when skipped.
    With `batch`, the folder fsync and the catalog note are left to `batch.finish`."""
    own = batch is None
    batch = _Batch() if batch is None else batch
    facts = _facts(lib, [asset_id])
    written = _write_all(lib, facts, batch, None)
    if own:
        batch.finish(lib)
    return written[0] if written else None


def _write_all(lib: Library, facts: list[_Facts], batch: _Batch,
               pool: ThreadPoolExecutor | None) -> list[Path]:
    """Render each sidecar here, write them on `pool` (each temporary file fsynced before its
    rename, as alone; several fsyncs in flight share the file system's journal commits)."""
    jobs = []
    for f in facts:
        try:
            rendered = _render(lib, f)
        except OSError as exc:
            log.warning("sidecar of asset %s not written: %s", f.asset.id, exc)
            continue
        if rendered is not None:
            jobs.append((f.asset.id, *rendered))

    def one(job: tuple[int, Path, bytes]) -> tuple[int, Path, int] | None:
        aid, path, data = job
        try:
            _write_atomic(path, data, fsync_folder=False)
            return aid, path, path.stat().st_mtime_ns
        except OSError as exc:
            log.warning("sidecar of asset %s not written: %s", aid, exc)
            return None

    done = pool.map(one, jobs) if pool is not None and len(jobs) > 1 else map(one, jobs)
    out = []
    for r in done:
        if r is not None:
            aid, path, mtime = r
            batch.folders.add(path.parent)
            batch.mtimes[aid] = mtime
            out.append(path)
    return out


def _write_atomic(path: Path, data: bytes, *, fsync_folder: bool = True) -> None:
    write_atomic(path, data, prefix=f".{path.name}.photovfs-", fsync_folder=fsync_folder)


#: threads writing one flush's sidecars: several fsyncs in flight at once
WRITERS = 4


class SidecarWriter:
    """Writes sidecars of changed assets shortly after the changes, off the request thread.

    The write waits until marks pause for `delay` seconds, or `max_delay` after the first
    pending mark: a burst of album adds (one COPY per photo) then runs without sidecar writes
    competing with its requests in this process, and the sidecars follow it in batches."""

    def __init__(self, lib: Library, delay: float = 0.5, max_delay: float = 5.0) -> None:
        self.lib, self.delay, self.max_delay = lib, delay, max_delay
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        #: held while writing, so that `flush()` from `Library.close()` waits for a write the
        #: timer thread has under way instead of returning while it still uses the catalog
        self._writing = threading.Lock()
        self._timer: threading.Timer | None = None
        self._first = self._last = 0.0  # monotonic times of the oldest and newest pending mark

    @property
    def enabled(self) -> bool:
        return self.lib.config.xmp.write_sidecars

    def mark(self, asset_ids) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._last = now
            self._pending.update(a for a in asset_ids if a is not None)
            if self._timer is None:
                self._arm(self.delay)

    def _arm(self, after: float) -> None:
        """Start the timer (with `_lock` held)."""
        self._timer = threading.Timer(after, self._due)
        self._timer.daemon = True
        self._timer.start()

    def _due(self) -> None:
        """Timer: write now if the marks paused or the oldest waited `max_delay`, else wait on."""
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # a flush took the pending set meanwhile
            wait = self._wait_left()
            if wait > 0 and self._pending:
                self._arm(wait)
                return
        self.flush()

    def _wait_left(self) -> float:
        """Seconds until the pending sidecars are due (`_lock` held): `delay` after the newest
        mark, and never later than `max_delay` after the oldest."""
        return min(self._last + self.delay, self._first + self.max_delay) - time.monotonic()

    def flush(self) -> int:
        """Write every pending sidecar now; returns once no write is under way."""
        with self._writing:
            with self._lock:
                ids, self._pending = sorted(self._pending), set()
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = None
            return self._write(ids) if ids else 0

    def _write(self, ids: list[int]) -> int:
        """The sidecars of `ids`, BATCH at a time (four catalog queries per batch)."""
        written, batch = 0, _Batch()
        try:
            with ThreadPoolExecutor(WRITERS, thread_name_prefix="photovfs-xmp") as pool:
                for i in range(0, len(ids), BATCH):
                    facts = _facts(self.lib, ids[i:i + BATCH])
                    written += len(_write_all(self.lib, facts, batch, pool))
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

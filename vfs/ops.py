"""The operations behind the writable views: albums, people, trash, edits, originals.

Each is a method of Library (bound in library.py) so that views and the CLI call one place. Every
operation that removes something records a TrashItem that can undo it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, Integer, bindparam, delete, insert, select, update

from .catalog.models import (
    STATUS_OK,
    STATUS_TRASHED,
    Album,
    AlbumAsset,
    Asset,
    AssetPerson,
    Folder,
    Person,
    TrashItem,
)
from .catalog.store import apply_facts, ensure_folder, link_facts
from .errors import BadMedia, Conflict, Exists, NotEmpty, NotFound
from .files import durable_move, free_name, fsync_dir
from .names import name_key, text_to_fs, with_suffix_number
from .node import Node
from .roles import Actor, check_write

if TYPE_CHECKING:
    from .library import Library


# ---- trash bookkeeping ---------------------------------------------------------------------------
def _trash_item(self: Library, s, kind: str, name: str, actor: Actor, *, payload: dict,
                asset_id: int | None = None, file: Path | None = None) -> TrashItem:
    taken = {name_key(n) for n in s.scalars(select(TrashItem.name))}
    n = 1
    while name_key(with_suffix_number(name, n)) in taken:
        n += 1
    now = datetime.now()
    item = TrashItem(kind=kind, name=with_suffix_number(name, n), asset_id=asset_id,
                     file=str(file) if file else None, payload=json.dumps(payload),
                     deleted_at=now, deleted_by=actor.name,
                     expires_at=now + timedelta(days=self.config.trash.retention_days))
    s.add(item)
    s.flush()
    return item


def _trash_dir(self: Library) -> Path:
    d = self.config.state_dir / "trash" / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    d.mkdir(parents=True, exist_ok=True)
    return d


def trash_asset(self: Library, asset_id: int | None, actor: Actor) -> None:
    """Move an original to trash: gone from every view, restorable with its albums and people."""
    with self.write() as s:
        asset = s.get(Asset, asset_id)
        if asset is None or asset.status == STATUS_TRASHED:
            raise NotFound()
        src = self.original_path(asset.folder, asset.filename)
        dst = _trash_dir(self) / text_to_fs(asset.filename)
        durable_move(src, dst)
        payload = {"folder": asset.folder, "filename": asset.filename, "mime": asset.mime,
                   "prev_status": asset.status}
        side = _beside_sidecar(src)
        if side is not None:  # the sidecar (names, albums) travels with its photo
            durable_move(side, dst.parent / side.name)
            payload["sidecar"] = side.name
        asset.status = STATUS_TRASHED
        _trash_item(self, s, "asset", asset.vname, actor, asset_id=asset.id, file=dst,
                    payload=payload)


def _beside_sidecar(original: Path) -> Path | None:
    for cand in (original.with_name(original.name + ".xmp"), original.with_suffix(".xmp")):
        if cand.exists() and cand != original:
            return cand
    return None


def restore(self: Library, item_id: int, actor: Actor) -> Node:
    """Undo a removal recorded in trash; returns the node where the thing is back."""
    with self.write() as s:
        item = s.get(TrashItem, item_id)
        if item is None:
            raise NotFound()
        data = json.loads(item.payload)
        where = _RESTORERS[item.kind](self, s, item, data)
        s.delete(item)
        touched = _album_members(s, data.get("album_ids", [data["album_id"]])) \
            if item.kind == "album" else data.get("asset_ids", [item.asset_id])
    self.sidecars.mark(touched)
    return self.resolve(where)


def _restore_asset(self: Library, s, item: TrashItem, data: dict) -> str:
    asset = s.get(Asset, item.asset_id)
    if asset is None:
        raise Conflict("the catalog no longer knows this photo")
    assert item.file is not None  # asset items always carry the trashed file
    folder_path = self.original_path(data["folder"], "")
    folder_path.mkdir(parents=True, exist_ok=True)
    target = free_name(folder_path, text_to_fs(data["filename"]))
    durable_move(Path(item.file), target)
    if data.get("sidecar"):
        side = Path(item.file).parent / data["sidecar"]
        name = target.name + ".xmp" if data["sidecar"].endswith(".xmp") and \
            data["sidecar"][:-4] == Path(item.file).name else target.stem + ".xmp"
        if side.exists() and not (target.parent / name).exists():
            durable_move(side, target.parent / name)
    asset.folder, asset.filename = data["folder"], os.fsdecode(target.name)
    asset.status = data.get("prev_status", STATUS_OK)
    ensure_folder(s, asset.folder)
    return f"originals/{asset.folder}/{asset.filename}".replace("//", "/")


def _restore_version(self: Library, s, item: TrashItem, data: dict) -> str:
    """Restoring an old version makes it the current content (the current one becomes a version)."""
    asset = s.get(Asset, item.asset_id)
    if asset is None:
        raise Conflict("the catalog no longer knows this photo")
    if asset.status == STATUS_TRASHED:  # no original to replace: the version must stay in trash
        raise Conflict("the photo itself is in trash; restore it first")
    assert item.file is not None  # version items always carry the old bytes
    tmp = self._claim_tmp(Path(item.file), Path(item.file).suffix)
    _replace_original(self, s, asset, tmp, Actor(item.deleted_by or "local"))
    return f"originals/{asset.folder}/{asset.filename}".replace("//", "/")


def _restore_album(self: Library, s, item: TrashItem, data: dict) -> str:
    album = s.get(Album, data["album_id"])
    ids = data.get("album_ids", [album.id])
    for a in s.scalars(select(Album).where(Album.id.in_(ids))):
        clash = s.scalar(select(Album).where(Album.path_key == name_key(a.path), Album.id != a.id,
                                             Album.trashed.is_(False)))
        if clash is not None:
            raise Exists(f"an album named {a.path} exists; rename it first")
    for a in s.scalars(select(Album).where(Album.id.in_(ids))):
        a.trashed, a.path_key = False, name_key(a.path)
    for link in data.get("links", []):
        if s.get(AlbumAsset, (link["album_id"], link["asset_id"])) is None:
            s.add(AlbumAsset(album_id=link["album_id"], asset_id=link["asset_id"],
                             added_at=datetime.now()))
    return f"by-album/{album.path}"


def _restore_person(self: Library, s, item: TrashItem, data: dict) -> str:
    person = s.get(Person, data["person_id"])
    person.trashed = False
    for link in data.get("links", []):
        s.execute(update(AssetPerson).where(AssetPerson.person_id == link["person_id"],
                                            AssetPerson.asset_id == link["asset_id"])
                  .values(rejected=False))
    return f"by-person/{_person_folder(person)}"


def _restore_link(self: Library, s, item: TrashItem, data: dict) -> str:
    if "album_id" in data:
        album = s.get(Album, data["album_id"])
        if album is None or album.trashed:  # merged away or in trash itself
            raise Conflict("that album no longer exists; add the photo to an album instead")
        if s.get(AlbumAsset, (data["album_id"], data["asset_id"])) is None:
            s.add(AlbumAsset(album_id=data["album_id"], asset_id=data["asset_id"],
                             added_at=datetime.now()))
        return f"by-album/{album.path}"
    s.execute(update(AssetPerson).where(AssetPerson.person_id == data["person_id"],
                                        AssetPerson.asset_id == data["asset_id"])
              .values(rejected=False))
    person = s.get(Person, data["person_id"])
    if person is None or person.trashed:  # merged away or in trash itself
        raise Conflict("that person no longer exists; add the photo to a person instead")
    return f"by-person/{_person_folder(person)}"


_RESTORERS = {"asset": _restore_asset, "album": _restore_album, "person": _restore_person,
              "link": _restore_link, "version": _restore_version}


def purge(self: Library, item_id: int, actor: Actor) -> None:
    """Delete a trash item for good (admins only; checked by the caller via check_write)."""
    check_write(actor, "trash", purge=True)
    with self.write() as s:
        item = s.get(TrashItem, item_id)
        if item is None:
            raise NotFound()
        if item.kind == "asset":
            s.execute(delete(Asset).where(Asset.id == item.asset_id))
        elif item.kind == "album":
            data = json.loads(item.payload)
            s.execute(delete(Album).where(Album.id.in_(data.get("album_ids", []))))
        elif item.kind == "person":
            s.execute(delete(Person).where(Person.id == json.loads(item.payload)["person_id"]))
        s.delete(item)
    if item.file:
        Path(item.file).unlink(missing_ok=True)
        shutil.rmtree(Path(item.file).parent, ignore_errors=True)


# ---- albums --------------------------------------------------------------------------------------
def add_to_album(self: Library, album_id: int, asset_id: int | None) -> None:
    """Filling an album runs this once per photo (a COPY each): one statement on a Core
    connection, which adds the member unless it is one already."""
    with self.write_core() as c:
        c.execute(_ADD_MEMBER, {"album_id": album_id, "asset_id": asset_id,
                                "added_at": datetime.now()})
    self.sidecars.mark([asset_id])


_IN_ALBUM = select(AlbumAsset.asset_id).where(AlbumAsset.album_id == bindparam("album_id"),
                                              AlbumAsset.asset_id == bindparam("asset_id"))
#: INSERT ... SELECT ... WHERE NOT EXISTS: the existence check and the insert in one statement
_ADD_MEMBER = insert(AlbumAsset).from_select(
    ["album_id", "asset_id", "added_at"],
    select(bindparam("album_id", type_=Integer), bindparam("asset_id", type_=Integer),
           bindparam("added_at", type_=DateTime)).where(~_IN_ALBUM.exists()))


def _album_members(s, album_ids: list[int]) -> list[int]:
    return list(s.scalars(select(AlbumAsset.asset_id).where(AlbumAsset.album_id.in_(album_ids))))


def _person_members(s, person_id: int) -> list[int]:
    return list(s.scalars(select(AssetPerson.asset_id).where(AssetPerson.person_id == person_id)))


def remove_from_album(self: Library, album_id: int, asset_id: int, actor: Actor) -> None:
    with self.write() as s:
        album = s.get(Album, album_id)
        assert album is not None
        s.execute(delete(AlbumAsset).where(AlbumAsset.album_id == album_id,
                                           AlbumAsset.asset_id == asset_id))
        vname = s.scalar(select(Asset.vname).where(Asset.id == asset_id))
        _trash_item(self, s, "link", f"{vname} (from album {album.path.replace('/', '-')})",
                    actor, payload={"album_id": album_id, "asset_id": asset_id},
                    asset_id=asset_id)
    self.sidecars.mark([asset_id])


def trash_album(self: Library, path: str, actor: Actor) -> None:
    """The album and its sub-albums (membership, not photos) go to trash as one item."""
    with self.write() as s:
        album = s.scalar(select(Album).where(Album.path_key == name_key(path),
                                             Album.trashed.is_(False)))
        if album is None:
            raise NotFound()
        prefix = album.path_key + "/"
        subs = [a for a in s.scalars(select(Album).where(Album.trashed.is_(False)))
                if a.path_key.startswith(prefix)]
        ids = [album.id] + [a.id for a in subs]
        folded_ids, links = _fold_album_items(s, album.path, ids)
        s.execute(update(Album).where(Album.id.in_(ids)).values(trashed=True))
        ids += folded_ids
        # free the names while in trash (path_key is unique): a new album "Trip" may be made
        for a in s.scalars(select(Album).where(Album.id.in_(ids))):
            a.path_key = f"{name_key(a.path)}//trashed-{a.id}"  # "//" never occurs in a name
        _trash_item(self, s, "album", f"album {album.path.replace('/', '-')}", actor,
                    payload={"album_id": album.id, "album_ids": ids, "links": links})
        members = _album_members(s, ids)
    self.sidecars.mark(members)


#: an rm -r removes one entry after another; a pause longer than this ends the run being folded
FOLD_GAP = timedelta(seconds=3)


def _recent_run(items: Iterable[TrashItem]) -> list[TrashItem]:
    """The trash items of the unbroken run of removals that ends now, newest first."""
    run, last = [], datetime.now()
    for item in sorted(items, key=lambda i: i.deleted_at, reverse=True):
        if last - item.deleted_at > FOLD_GAP:
            break
        run.append(item)
        last = item.deleted_at
    return run


def _fold_album_items(s, path: str, ids: list[int]) -> tuple[list[int], list[dict]]:
    """Fold earlier trash items of this album's tree into the new one.

    `rm -r` over FUSE unlinks every photo and removes sub-albums before the album itself; restoring
    the album must undo all of it at once, so those separate items become part of this one. Only the
    unbroken run of removals just before this one is folded (see FOLD_GAP): a photo removed from the
    album deliberately, earlier, stays removed when the album is restored.
    """
    prefix = name_key(path) + "/"
    items = s.scalars(select(TrashItem).where(TrashItem.kind.in_(("album", "link")))).all()
    album_ids, links = [], []
    for item in _recent_run(items):
        data = json.loads(item.payload)
        if item.kind == "album":
            sub = s.get(Album, data["album_id"])
            if sub is None or not name_key(sub.path).startswith(prefix):
                continue
            album_ids += data.get("album_ids", [sub.id])
            links += data.get("links", [])
        elif data.get("album_id") in ids or data.get("album_id") in album_ids:
            links.append(data)
        else:
            continue
        s.delete(item)
    return album_ids, links


def rename_album(self: Library, src: str, dst: str, actor: Actor) -> None:
    """Rename or regroup an album; onto an existing album the two are merged."""
    with self.write() as s:
        album = s.scalar(select(Album).where(Album.path_key == name_key(src),
                                             Album.trashed.is_(False)))
        if album is None:
            raise NotFound()
        parent = dst.rpartition("/")[0]
        if parent and s.scalar(select(Album).where(Album.path_key == name_key(parent))) is None:
            raise Conflict("the target album group does not exist")
        target = s.scalar(select(Album).where(Album.path_key == name_key(dst),
                                              Album.trashed.is_(False)))
        members = _album_members(s, [album.id])
        self.sidecars.mark(members)
        if target is not None and target.id != album.id:
            _merge_album(s, album, target)
            return
        old = album.path
        for a in s.scalars(select(Album).where(Album.trashed.is_(False))).all():
            if a.path == old or a.path.startswith(old + "/"):
                a.path = dst + a.path[len(old):]
                a.path_key = name_key(a.path)
                a.parent = a.path.rpartition("/")[0]


def _merge_album(s, album: Album, target: Album) -> None:
    members = set(s.scalars(select(AlbumAsset.asset_id).where(AlbumAsset.album_id == target.id)))
    for aid in s.scalars(select(AlbumAsset.asset_id).where(AlbumAsset.album_id == album.id)):
        if aid not in members:
            s.add(AlbumAsset(album_id=target.id, asset_id=aid, added_at=datetime.now()))
    children = s.scalar(select(Album.id).where(Album.parent == album.path))
    if children is not None:
        raise NotEmpty("merge albums without sub-albums, or move those first")
    s.delete(album)


# ---- people --------------------------------------------------------------------------------------
def _person_folder(person: Person) -> str:
    """The person's folder name: the name, or the stable 'Unnamed 0042' of an unnamed group."""
    from .views.by_person import unnamed_folder

    return person.name or unnamed_folder(person.id)


def tag_person(self: Library, person_id: int, asset_id: int | None) -> None:
    with self.write() as s:
        link = s.scalar(select(AssetPerson).where(AssetPerson.person_id == person_id,
                                                  AssetPerson.asset_id == asset_id))
        if link is None:
            s.add(AssetPerson(asset_id=asset_id, person_id=person_id, source="manual"))
        else:
            link.rejected = False
    self.sidecars.mark([asset_id])


def untag_person(self: Library, person_id: int, asset_id: int | None, actor: Actor) -> None:
    """"This is not P": the link is kept as rejected so automatic grouping never restores it."""
    with self.write() as s:
        s.execute(update(AssetPerson).where(AssetPerson.person_id == person_id,
                                            AssetPerson.asset_id == asset_id)
                  .values(rejected=True))
        person = s.get(Person, person_id)
        assert person is not None
        vname = s.scalar(select(Asset.vname).where(Asset.id == asset_id))
        _trash_item(self, s, "link", f"{vname} (not {_person_folder(person)})", actor,
                    payload={"person_id": person_id, "asset_id": asset_id}, asset_id=asset_id)
    self.sidecars.mark([asset_id])


def trash_person(self: Library, person_id: int, actor: Actor) -> None:
    with self.write() as s:
        person = s.get(Person, person_id)
        assert person is not None
        person.trashed = True
        ids = list(s.scalars(select(AssetPerson.asset_id).where(
            AssetPerson.person_id == person_id, AssetPerson.rejected.is_(False))))
        links = []  # photos unlinked one by one just before (rm -r): undone with the person
        for item in _recent_run(s.scalars(select(TrashItem).where(TrashItem.kind == "link")).all()):
            data = json.loads(item.payload)
            if data.get("person_id") == person_id:
                links.append(data)
                s.delete(item)
        ids += [link["asset_id"] for link in links]
        _trash_item(self, s, "person", f"person {_person_folder(person)}", actor,
                    payload={"person_id": person_id, "asset_ids": ids, "links": links})
    self.sidecars.mark(ids)


def rename_person(self: Library, person_id: int, name: str, actor: Actor) -> None:
    """Name or rename a person; onto an existing person the two are merged."""
    with self.write() as s:
        self.sidecars.mark(_person_members(s, person_id))
        person = s.get(Person, person_id)
        assert person is not None
        other = s.scalar(select(Person).where(Person.name_key == name_key(name),
                                              Person.id != person_id))
        if other is None:
            person.name, person.name_key = name, name_key(name)
            return
        if other.trashed:
            raise Exists("a person with that name is in trash; restore or empty it first")
        s.execute(update(AssetPerson).where(AssetPerson.person_id == person_id)
                  .values(person_id=other.id))
        s.delete(person)


# ---- edits ---------------------------------------------------------------------------------------
def edit(self: Library, asset_id: int, tmp: Path, actor: Actor) -> Node:
    """Replace an original with new content: verified first, old bytes kept as a version in trash."""
    from .metadata import verify

    with self.session() as s:
        asset = s.get(Asset, asset_id)
        if asset is None:
            raise NotFound()
    if tmp.stat().st_size == 0:
        raise BadMedia("an empty file cannot replace a photo")
    verify(tmp)
    with self.write() as s:
        asset = s.get(Asset, asset_id)
        assert asset is not None  # checked above
        _replace_original(self, s, asset, tmp, actor)
        folder, filename = asset.folder, asset.filename
    return self.resolve(f"originals/{folder}/{filename}".replace("//", "/"))


def _replace_original(self: Library, s, asset: Asset, tmp: Path, actor: Actor) -> None:
    from .hashing import sha256_file
    from .metadata import extract

    target = self.original_path(asset.folder, asset.filename)
    keep = _trash_dir(self) / text_to_fs(asset.filename)
    staged = target.with_name(f".{target.name}.photovfs-new")
    shutil.copyfile(tmp, staged)
    with open(staged, "rb+") as fh:
        os.fsync(fh.fileno())
    os.link(target, keep)  # the previous bytes stay reachable before anything is replaced
    fsync_dir(keep.parent)
    os.replace(staged, target)
    fsync_dir(target.parent)
    tmp.unlink(missing_ok=True)
    st = target.stat()
    stamp = datetime.now().strftime("%Y-%m-%d %H.%M.%S")
    stem, dot, ext = asset.vname.rpartition(".")
    _trash_item(self, s, "version", f"{stem or ext} (version {stamp}){dot}{ext if stem else ''}",
                actor, asset_id=asset.id, file=keep,
                payload={"mime": asset.mime, "sha256": asset.sha256})
    asset.sha256, asset.size, asset.mtime_ns = sha256_file(target), st.st_size, st.st_mtime_ns
    facts = extract(target)
    apply_facts(s, asset, facts)
    link_facts(s, asset, facts)


# ---- ingest (the pipeline lives in photovfs.ingest) ---------------------------------------------
def ingest_file(self: Library, tmp: Path, name: str, actor: Actor) -> int:
    """File a complete upload as an original (or find its byte-identical twin); returns asset id.

    A copy of a photo the library shows (`cp` of one into an album over FUSE or SMB: the issue's
    "a byte-identical copy only adds the reference") files nothing, so it skips the journaled
    pipeline (staging, a full decode, metadata): its hash finds the twin and the upload is
    removed. Anything else, or bigger than TWIN_CHECK_MAX, goes through the pipeline."""
    twin = _visible_twin(self, tmp)
    if twin is not None:
        tmp.unlink(missing_ok=True)
        return twin
    from .ingest import ingest_path

    return ingest_path(self, tmp, name).asset_id


#: uploads up to this size are hashed before the pipeline, which hashes again when they are new
#: (a photo costs a few ms more; a long video would cost seconds, and is rarely a copy)
TWIN_CHECK_MAX = 128 << 20
_TWIN = select(Asset.id).where(Asset.sha256 == bindparam("sha256"), Asset.size == bindparam("size"),
                               Asset.status == STATUS_OK).order_by(Asset.id).limit(1)


def _visible_twin(self: Library, tmp: Path) -> int | None:
    """The catalogued, visible photo with exactly these bytes, if any."""
    from .hashing import sha256_file

    size = os.stat(tmp).st_size
    if size == 0 or size > TWIN_CHECK_MAX:
        return None
    with self.engine.connect() as c:
        return c.execute(_TWIN, {"sha256": sha256_file(tmp), "size": size}).scalar()


def inbox_arrived(self: Library, path: Path, actor: Actor) -> None:
    """A complete file landed in the on-disk inbox (PUT, FUSE close, rename from a temp name)."""
    if self.on_inbox is not None:
        self.on_inbox(path, actor)


# ---- originals -----------------------------------------------------------------------------------
def make_original_folder(self: Library, folder: str, actor: Actor) -> Node:
    path = self.original_path(folder, "")
    try:
        path.mkdir()
    except FileExistsError:
        raise Exists() from None
    except FileNotFoundError:
        raise NotFound("the parent folder does not exist") from None
    with self.write() as s:
        ensure_folder(s, folder)
    return self.resolve(f"originals/{folder}")


def remove_original_folder(self: Library, folder: str, actor: Actor) -> None:
    """rm -r of a real folder: each original goes to trash, then the empty folders go."""
    with self.session() as s:
        ids = list(s.scalars(select(Asset.id).where(
            (Asset.folder == folder) | Asset.folder.startswith(folder + "/"),
            Asset.status != STATUS_TRASHED)))
    for aid in ids:
        trash_asset(self, aid, actor)
    path = self.original_path(folder, "")
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass  # a file the catalog does not know stays where it is
    with self.write() as s:
        for f in s.scalars(select(Folder)).all():
            if (f.path == folder or f.path.startswith(folder + "/")) and not \
                    self.original_path(f.path, "").exists():
                s.delete(f)


def move_original(self: Library, src: str, dst: str, is_dir: bool, actor: Actor) -> None:
    """Reorganise the real folders on disk; the catalog follows and identities are kept."""
    a, b = self.original_path(src, ""), self.original_path(dst, "")
    if b.exists():
        raise Exists()
    if not b.parent.is_dir():
        raise NotFound("the target folder does not exist")
    os.rename(a, b)
    fsync_dir(b.parent)
    with self.write() as s:
        if not is_dir:
            folder, _, filename = dst.rpartition("/")
            sf, _, sn = src.rpartition("/")
            s.execute(update(Asset).where(Asset.folder == sf, Asset.filename == sn)
                      .values(folder=folder, filename=filename))
            ensure_folder(s, folder)
            return
        for asset in s.scalars(select(Asset).where(
                (Asset.folder == src) | Asset.folder.startswith(src + "/"))):
            asset.folder = dst + asset.folder[len(src):]
        for f in s.scalars(select(Folder).where(
                (Folder.path == src) | Folder.path.startswith(src + "/"))).all():
            s.delete(f)
        s.flush()
        for asset_folder in set(s.scalars(select(Asset.folder).where(
                (Asset.folder == dst) | Asset.folder.startswith(dst + "/")))):
            ensure_folder(s, asset_folder)
        ensure_folder(s, dst)


# ---- renditions (thumbnails/) --------------------------------------------------------------------
def _renditions(self: Library):
    if self._renditions is None:
        from .thumbs import Renditions

        t = self.config.thumbnails
        self._renditions = Renditions(
            self.config.state_dir / "renditions", memory_bytes=t.memory_mb << 20,
            cap_bytes=t.cache_cap_mb << 20, workers=t.workers,
            max_pixels=t.max_megapixels * 1_000_000)
    return self._renditions


def prepare_renditions(self: Library, nodes: list[Node]) -> None:
    """Make the missing renditions of a folder in parallel, so listed sizes are exact."""
    r = _renditions(self)
    size = self.config.thumbnails.view_size
    items = [(n.source, n.etag, _media_type(n)) for n in nodes if n.etag]
    missing = [i for i in items if r.cached(i[1], size) is None]
    if missing:
        r.ensure_many(missing, size)


def _media_type(node: Node) -> str:
    return node.content_type.split("/", 1)[0]


def rendition_node(self: Library, src: Node, vpath: str) -> Node | None:
    """The rendition of an asset node, or None when it cannot be made (corrupt original)."""
    r = _renditions(self)
    size = self.config.thumbnails.view_size
    try:
        path = r.cached(src.etag, size) or r.get(src.source, src.etag, _media_type(src), size)
        st = path.stat()
    except FileNotFoundError:  # evicted between lookup and stat: make it again
        try:
            path = r.get(src.source, src.etag, _media_type(src), size)
            st = path.stat()
        except Exception:  # noqa: BLE001
            return None
    except Exception:  # noqa: BLE001 - a broken original must not break a frame's listing
        return None
    return Node(path=vpath, name=vpath.rsplit("/", 1)[-1], is_dir=False, kind="rendition",
                size=st.st_size, mtime=src.mtime, content_type="image/jpeg",
                etag=f"{src.etag}-r{size}", asset_id=src.asset_id, source=path)


# ---- housekeeping --------------------------------------------------------------------------------
def purge_expired(self: Library, now: datetime | None = None) -> int:
    """Delete trash items past their retention; servers call this periodically. Returns count."""
    from .roles import SYSTEM

    now = now or datetime.now()
    with self.session() as s:
        ids = list(s.scalars(select(TrashItem.id).where(TrashItem.expires_at <= now)))
    for item_id in ids:
        purge(self, item_id, SYSTEM)
    return len(ids)

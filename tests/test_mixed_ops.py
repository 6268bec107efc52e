"""One library served at once by a real WebDAV server (in this process) and a real FUSE mount
(a `photovfs mount` subprocess) on the same state dir, driven by a seeded random mix of the
writable-view operations through either adapter.

Two processes share the SQLite catalog; that is supported (WAL + busy timeout, see catalog/db.py).

After every step:
  * no photo bytes are ever lost: the sha256 of every file version created or seen is still present
    in the originals or in STATE/trash (disk walk, hashes cached by (path, size, mtime, inode));
  * every visible asset is in exactly one by-date day folder (walked through the core);
  * the folders the step touched list the same names over WebDAV (PROPFIND depth 1), FUSE
    (os.listdir) and the core; every FULL_EVERY steps all albums and people are compared.

Freshness over FUSE, honestly: the kernel may keep names and attributes for ATTR_TIMEOUT (2 s) and
the daemon reuses resolved nodes for 1 s, but a directory *listing* is never cached: every
opendir() calls `Library.list()` on the catalog, and the daemon's inode table maps numbers to
virtual paths, so even a stale dentry lists what that path holds now (or fails ENOENT when it is
gone). Comparing os.listdir() with PROPFIND right after a write through the other adapter is
therefore an honest comparison without sleeping. Only sizes and mtimes of entries may be stale, so
names are compared, and content is checked on disk (the originals), never read through a stale
FUSE attribute.

Album merges are done over FUSE (rename onto an existing folder): over WebDAV, MOVE with
`Overwrite: T` onto an existing collection deletes the destination first (RFC 4918 9.9.3); the mix
includes that too ("replace"), the replaced album going to trash.

PHOTOVFS_MIXED_SEED / PHOTOVFS_MIXED_STEPS override the seed and the number of steps.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from dav_helpers import DavServer
from fuse_helpers import Mount, requires_fuse
from photovfs.catalog.models import VISIBLE, Asset
from sqlalchemy import select

SEED = int(os.environ.get("PHOTOVFS_MIXED_SEED", "20240607"))
STEPS = int(os.environ.get("PHOTOVFS_MIXED_STEPS", "2000"))
FULL_EVERY = 25
ALBUMS = ["Trip", "Family", "Été 2021", "Best of", "Cats", "Zoë", "Work", "Misc", "Trip 2", "Old"]
PEOPLE = ["Anna", "Bob", "Chloé", "Dan", "Eve", "Frank", "Grace"]
DATES = [datetime(2021, 4, 30, 9), datetime(2021, 5, 1, 12), datetime(2022, 7, 14, 18),
         datetime(1999, 12, 31, 23), datetime(2023, 1, 2, 3)]
# a refusal is an answer (the core said no); anything else (500, EIO) is a failure
OK_STATUS = {200, 201, 204, 207}
REFUSED_STATUS = {403, 404, 405, 409, 412, 423}  # 405: MKCOL on an existing URL
REFUSED_ERRNO = {errno.ENOENT, errno.EEXIST, errno.EACCES, errno.EPERM, errno.ENOTEMPTY,
                 errno.EINVAL, errno.EBUSY, errno.ENOTDIR, errno.EISDIR}
IMAGE_SUFFIXES = (".jpg", ".jpeg")


class Failure(AssertionError):
    pass


def _jpeg_bytes(tmp: Path, n: int, taken: datetime) -> bytes:
    p = jpeg_with_date(tmp / f"gen-{n}.jpg", taken.replace(minute=n % 60, second=n // 60 % 60),
                       color=(n * 37 % 256, n * 91 % 256, n * 53 % 256), size=(64 + n % 7, 48))
    data = p.read_bytes()
    p.unlink()
    return data


class Hashes:
    """sha256 of the image files under some roots, cached by (path, size, mtime, inode)."""

    def __init__(self, roots: list[Path], skip: Path) -> None:
        self.roots, self.skip = roots, skip
        self.cache: dict[str, tuple[tuple[int, int, int], str]] = {}

    def present(self) -> set[str]:
        out: set[str] = set()
        for root in self.roots:
            for dirpath, dirs, files in os.walk(root):
                if Path(dirpath) == self.skip.parent:
                    dirs[:] = [d for d in dirs if d != self.skip.name]
                for f in files:
                    if not f.lower().endswith(IMAGE_SUFFIXES):
                        continue
                    p = os.path.join(dirpath, f)
                    try:
                        st = os.stat(p)
                    except FileNotFoundError:
                        continue
                    key = (st.st_size, st.st_mtime_ns, st.st_ino)
                    hit = self.cache.get(p)
                    if hit is None or hit[0] != key:
                        with open(p, "rb") as fh:
                            hit = (key, hashlib.sha256(fh.read()).hexdigest())
                        self.cache[p] = hit
                    out.add(hit[1])
        return out


class World:
    def __init__(self, dav: DavServer, mnt: Mount, tmp: Path, seed: int) -> None:
        self.dav, self.mnt, self.lib = dav, mnt, dav.lib
        self.tmp = tmp
        self.rng = random.Random(seed)
        state = self.lib.config.state_dir
        self.hashes = Hashes([self.lib.config.library, state / "trash"], state)
        self.known: set[str] = set()
        self.counts: Counter = Counter()
        self.n = 0
        self.log: list[str] = []

    # ---- reads through the core --------------------------------------------------------------
    def names(self, vpath: str) -> list[str]:
        return [n.name for n in self.lib.list(vpath)]

    def albums(self) -> list[str]:
        return self.names("by-album")

    def people(self) -> list[str]:
        return [n for n in self.names("by-person") if n != "_largest"]

    def by_date(self) -> list:
        out = []
        for y in self.names("by-date"):
            for m in self.names(f"by-date/{y}"):
                for d in self.names(f"by-date/{y}/{m}"):
                    out += self.lib.list(f"by-date/{y}/{m}/{d}")
        return out

    def visible(self) -> list:
        """Visible assets in one catalog query (the by-date walk is the check, not the picker)."""
        from types import SimpleNamespace

        with self.lib.session() as s:
            rows = s.execute(select(Asset.id, Asset.vname, Asset.year, Asset.month, Asset.day,
                                    Asset.folder, Asset.filename)
                             .where(Asset.status.in_(VISIBLE)).order_by(Asset.id)).all()
        root = self.lib.config.library
        return [SimpleNamespace(
            asset_id=r.id, name=r.vname, path=f"by-date/{r.year:04d}/{r.month:02d}/{r.day:02d}/"
            f"{r.vname}", source=root / (f"{r.folder}/{r.filename}" if r.folder else r.filename))
            for r in rows]

    def trash(self) -> list:
        return self.lib.list("trash")

    # ---- adapters ----------------------------------------------------------------------------
    def dav_call(self, method: str, path: str, dest: str | None = None, overwrite: bool = False,
                 data: bytes | None = None) -> bool:
        headers = {}
        if dest is not None:
            headers = {"Destination": self.dav.url(dest), "Overwrite": "T" if overwrite else "F"}
        r = self.dav.request(method, path, headers=headers, data=data)
        desc = f"DAV {method} {path}" + (f" -> {dest}" if dest else "")
        if r.status_code in OK_STATUS:
            self.log.append(f"{desc}: {r.status_code}")
            return True
        if r.status_code in REFUSED_STATUS:
            self.log.append(f"{desc}: refused {r.status_code}")
            self.counts["refused"] += 1
            return False
        raise Failure(f"{desc}: {r.status_code} {r.text[:300]}")

    def fuse_call(self, desc: str, fn, *args) -> bool:
        try:
            fn(*args)
        except OSError as exc:
            if exc.errno in REFUSED_ERRNO:
                self.log.append(f"FUSE {desc}: refused {errno.errorcode[exc.errno]}")
                self.counts["refused"] += 1
                return False
            raise Failure(f"FUSE {desc}: {exc!r}") from exc
        self.log.append(f"FUSE {desc}: ok")
        return True

    def m(self, vpath: str) -> Path:
        return self.mnt.path(vpath)

    def new_bytes(self) -> bytes:
        self.n += 1
        data = _jpeg_bytes(self.tmp, 1000 + self.n, self.rng.choice(DATES))
        self.known.add(hashlib.sha256(data).hexdigest())
        return data

    # ---- operations --------------------------------------------------------------------------
    def via_dav(self) -> bool:
        return self.rng.random() < 0.5

    def op_mkdir(self, view: str, pool: list[str]) -> list[str]:
        name = self.rng.choice(pool)
        if self.via_dav():
            self.dav_call("MKCOL", f"{view}/{name}")
        else:
            self.fuse_call(f"mkdir {view}/{name}", os.mkdir, self.m(f"{view}/{name}"))
        return [view, f"{view}/{name}"]

    def op_rename(self, view: str, have: list[str], pool: list[str], merge: bool) -> list[str]:
        if not have:
            return []
        src = self.rng.choice(have)
        targets = [n for n in have if n != src] if merge else [n for n in pool if n not in have]
        if not targets:
            return []
        dst = self.rng.choice(targets)
        a, b = f"{view}/{src}", f"{view}/{dst}"
        if merge or not self.via_dav():  # a merge is a rename onto an existing folder (FUSE)
            self.fuse_call(f"rename {a} -> {b}", os.rename, self.m(a), self.m(b))
        else:
            self.dav_call("MOVE", a, b)
        return [view, a, b]

    def op_replace_album(self) -> list[str]:
        have = self.albums()
        if len(have) < 2:
            return []
        src, dst = self.rng.sample(have, 2)
        self.dav_call("MOVE", f"by-album/{src}", f"by-album/{dst}", overwrite=True)
        return ["by-album", f"by-album/{src}", f"by-album/{dst}"]

    def op_rmdir(self, view: str, have: list[str]) -> list[str]:
        if not have:
            return []
        p = f"{view}/{self.rng.choice(have)}"
        if self.via_dav():
            self.dav_call("DELETE", p)
        else:
            self.fuse_call(f"rm -r {p}", shutil.rmtree, self.m(p))
        return [view, p]

    def op_add(self, view: str, have: list[str]) -> list[str]:
        if not have:
            return []
        folder = f"{view}/{self.rng.choice(have)}"
        members = set(self.names(folder))
        cands = [n for n in self.visible() if n.name not in members]
        if not cands:
            return []
        src = self.rng.choice(cands)
        dst = f"{folder}/{src.name}"
        how = self.rng.choice(["dav", "link", "cp"])
        if how == "dav":
            ok = self.dav_call("COPY", src.path, dst)
        elif how == "link":
            ok = self.fuse_call(f"ln {src.path} {dst}", os.link, self.m(src.path), self.m(dst))
        else:
            ok = self.fuse_call(f"cp {src.path} {dst}", shutil.copyfile, self.m(src.path),
                                self.m(dst))
        if ok and src.name not in self.names(folder):
            raise Failure(f"{src.name} was added to {folder} but is not listed")
        return [folder]

    def op_remove_member(self, view: str, have: list[str]) -> list[str]:
        if not have:
            return []
        folder = f"{view}/{self.rng.choice(have)}"
        members = self.names(folder)
        if not members:
            return []
        p = f"{folder}/{self.rng.choice(members)}"
        source = self.lib.resolve(p).source
        if self.via_dav():
            ok = self.dav_call("DELETE", p)
        else:
            ok = self.fuse_call(f"rm {p}", os.unlink, self.m(p))
        if ok and not Path(source).exists():
            raise Failure(f"removing {p} from {folder} removed the original")
        return [folder]

    def op_edit(self) -> list[str]:
        nodes = self.visible()
        if not nodes:
            return []
        node = self.rng.choice(nodes)
        places = [node.path, f"originals/{Path(node.source).relative_to(self.lib.config.library)}"]
        for view, have in (("by-album", self.albums()), ("by-person", self.people())):
            for f in have:
                if node.name in self.names(f"{view}/{f}"):
                    places.append(f"{view}/{f}/{node.name}")
        p = self.rng.choice(places)
        data = self.new_bytes()
        how = self.rng.choice(["put", "write", "safe-save"])
        if how == "put":
            ok = self.dav_call("PUT", p, data=data)
        elif how == "write":
            def write():
                with open(self.m(p), "wb") as fh:
                    fh.write(data)
            ok = self.fuse_call(f"write {p}", write)
        else:
            tmp = self.m(p).with_name(self.m(p).name + ".tmp")

            def save():
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.rename(tmp, self.m(p))
            ok = self.fuse_call(f"safe-save {p}", save)
        if ok:
            after = self.lib.resolve(f"originals/{self.lib_rel(node.asset_id)}")
            if Path(after.source).read_bytes() != data:
                raise Failure(f"edit of {p} acknowledged but the original holds other bytes")
        return [p.rsplit("/", 1)[0]]

    def lib_rel(self, asset_id: int) -> str:
        with self.lib.session() as s:
            a = s.get(Asset, asset_id)
            return f"{a.folder}/{a.filename}" if a.folder else a.filename

    def op_delete_original(self) -> list[str]:
        nodes = self.visible()
        if len(nodes) < 8:  # keep enough photos around
            return []
        node = self.rng.choice(nodes)
        p = node.path if self.rng.random() < 0.5 else f"originals/{self.lib_rel(node.asset_id)}"
        if self.via_dav():
            self.dav_call("DELETE", p)
        else:
            self.fuse_call(f"rm {p}", os.unlink, self.m(p))
        return ["trash"]

    def op_restore(self) -> list[str]:
        items = self.trash()
        if not items:
            return []
        item = self.rng.choice(items)
        self.n += 1
        dst = f"by-date/restored-{self.n}"
        if self.via_dav():
            self.dav_call("MOVE", item.path, dst)
        else:
            self.fuse_call(f"restore {item.path}", os.rename, self.m(item.path), self.m(dst))
        return ["by-album", "by-person", "trash"]

    def step(self) -> list[str]:
        albums, people = self.albums(), self.people()
        ops = [
            (6, lambda: self.op_mkdir("by-album", ALBUMS)),
            (4, lambda: self.op_rename("by-album", albums, ALBUMS, merge=False)),
            (3, lambda: self.op_rename("by-album", albums, ALBUMS, merge=True)),
            (1, self.op_replace_album),
            (3, lambda: self.op_rmdir("by-album", albums)),
            (20, lambda: self.op_add("by-album", albums)),
            (8, lambda: self.op_remove_member("by-album", albums)),
            (4, lambda: self.op_mkdir("by-person", PEOPLE)),
            (3, lambda: self.op_rename("by-person", people, PEOPLE, merge=False)),
            (2, lambda: self.op_rename("by-person", people, PEOPLE, merge=True)),
            (2, lambda: self.op_rmdir("by-person", people)),
            (12, lambda: self.op_add("by-person", people)),
            (5, lambda: self.op_remove_member("by-person", people)),
            (10, self.op_edit),
            (4, self.op_delete_original),
            (10, self.op_restore),
        ]
        fn = self.rng.choices([f for _, f in ops], weights=[w for w, _ in ops])[0]
        return fn()

    # ---- invariants --------------------------------------------------------------------------
    def check_hashes(self) -> None:
        present = self.hashes.present()
        lost = self.known - present
        if lost:
            raise Failure(f"content lost (not in originals nor trash): {sorted(lost)[:5]}")
        self.known |= present

    def check_by_date_cheap(self) -> None:
        """Every step: each visible asset has one day folder and a name unique in it."""
        keys = [(n.path.lower()) for n in self.visible()]
        dup = [k for k, c in Counter(keys).items() if c > 1]
        if dup:
            raise Failure(f"two assets answer one by-date path: {dup}")

    def check_by_date(self) -> None:
        ids = [n.asset_id for n in self.by_date()]
        dup = [i for i, c in Counter(ids).items() if c > 1]
        if dup:
            raise Failure(f"assets in more than one by-date folder: {dup}")
        with self.lib.session() as s:
            visible = set(s.scalars(select(Asset.id).where(Asset.status.in_(VISIBLE))))
        if set(ids) != visible:
            raise Failure(f"by-date misses {visible - set(ids)} / shows {set(ids) - visible}")

    def dav_names(self, vpath: str) -> set[str] | None:
        r = self.dav.request("PROPFIND", vpath + "/", headers={"Depth": "1"})
        if r.status_code == 404:
            return None
        if r.status_code != 207:
            raise Failure(f"PROPFIND {vpath}: {r.status_code}")
        from dav_helpers import parse_multistatus

        own = "/" + vpath.strip("/")
        return {h.rstrip("/").rsplit("/", 1)[-1] for h in parse_multistatus(r.content)
                if h.rstrip("/") != own}

    def fuse_names(self, vpath: str) -> set[str] | None:
        try:
            return set(os.listdir(self.m(vpath)))
        except FileNotFoundError:
            return None

    def core_names(self, vpath: str) -> set[str] | None:
        from photovfs.errors import NotFound

        try:
            return set(self.names(vpath))
        except NotFound:
            return None

    def check_listing(self, vpath: str) -> None:
        core, dav, fuse = self.core_names(vpath), self.dav_names(vpath), self.fuse_names(vpath)
        if not (core == dav == fuse):
            raise Failure(f"{vpath} lists differently: core={core} dav={dav} fuse={fuse}")

    def check_full(self) -> None:
        for view in ("by-album", "by-person"):
            self.check_listing(view)
        for a in self.albums():
            self.check_listing(f"by-album/{a}")
        for p in self.people():
            self.check_listing(f"by-person/{p}")
        self.check_listing("trash")
        with self.lib.session() as s:
            rows = s.execute(select(Asset.folder, Asset.filename, Asset.sha256)
                             .where(Asset.status.in_(VISIBLE))).all()
        present = self.hashes.present()
        for folder, filename, digest in rows:
            if digest not in present:
                raise Failure(f"{folder}/{filename}: catalog hash not on disk")


def _library(root: Path, n: int = 30) -> None:
    for i in range(n):
        taken = DATES[i % 4].replace(minute=i)
        jpeg_with_date(root / f"set{i % 3}" / f"IMG_{i:04d}.jpg", taken,
                       color=(i * 8 % 256, 255 - i * 5 % 256, i * 17 % 256))


@pytest.fixture
def both(tmp_path: Path):
    photos = tmp_path / "Photos"
    _library(photos)
    dav = DavServer(photos).start()
    mnt = None
    try:
        mnt = Mount(photos, tmp_path / "mnt", tmp_path / "mount.log", "--no-scan")
        yield dav, mnt
    finally:
        if mnt is not None:
            mnt.stop()
        dav.stop()


def test_restoring_a_version_of_a_trashed_photo_is_refused_and_keeps_its_bytes(tmp_path: Path):
    """Found by the mix: the version's bytes were claimed out of trash, then the replace failed
    (no original to replace), leaving them only in STATE/tmp and a stray staged file."""
    from photovfs.errors import Conflict
    from photovfs.library import Library

    jpeg_with_date(tmp_path / "P" / "a.jpg", datetime(2021, 1, 1))
    lib = Library.open(tmp_path / "P")
    try:
        lib.scan()
        old = hashlib.sha256(lib.resolve("originals/a.jpg").source.read_bytes()).hexdigest()
        with lib.begin_write("originals/a.jpg") as up:
            up.write(_jpeg_bytes(tmp_path, 1, datetime(2021, 1, 1)))
            up.commit()
        lib.remove("originals/a.jpg")
        (version,) = [n for n in lib.list("trash") if "version" in n.name]
        with pytest.raises(Conflict):
            lib.move(version.path, "by-date/x")
        assert hashlib.sha256(Path(lib.resolve(version.path).source).read_bytes()).hexdigest() \
            == old
        assert not list((tmp_path / "P").glob(".*.photovfs-new"))
        lib.move("trash/a.jpg", "by-date/x")  # the photo first, then its version
        lib.move(version.path, "by-date/x")
        assert hashlib.sha256(lib.resolve("originals/a.jpg").source.read_bytes()).hexdigest() \
            == old
    finally:
        lib.close()


@requires_fuse
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_random_mix_over_webdav_and_fuse_keeps_every_byte_and_agrees(both, tmp_path: Path):
    dav, mnt = both
    world = World(dav, mnt, tmp_path, SEED)
    world.check_hashes()
    assert len(world.known) == 30
    started = time.monotonic()
    i = 0
    try:
        while len(world.log) < STEPS:  # STEPS operations through an adapter
            i += 1
            touched = world.step()
            world.counts["steps"] += 1
            world.check_hashes()
            world.check_by_date_cheap()
            for vpath in dict.fromkeys(touched):
                world.check_listing(vpath)
            if i % FULL_EVERY == 0:
                world.check_by_date()  # the real walk of by-date through the core
                world.check_full()
        world.check_full()
    except Exception as exc:
        tail = "\n".join(world.log[-15:])
        mount_log = "\n".join(mnt.log.read_text(errors="replace").splitlines()[-40:])
        raise AssertionError(f"seed={SEED} step={i}: {exc}\nlast operations:\n{tail}\n"
                             f"mount log:\n{mount_log}\n"
                             f"(rerun with PHOTOVFS_MIXED_SEED={SEED})") from exc
    ok = sum(1 for line in world.log if line.endswith((": ok", ": 200", ": 201", ": 204")))
    print(f"\nseed={SEED}: {STEPS} steps, {len(world.log)} adapter calls ({ok} done, "
          f"{world.counts['refused']} refused), {len(world.known)} distinct contents, "
          f"{time.monotonic() - started:.1f}s")
    assert ok > STEPS // 2  # the mix mostly did things, not only refusals

    # ---- 2. rm -rf of every album and person, then restore each trash item ------------------
    before = {}
    for view, have in (("by-album", world.albums()), ("by-person", world.people())):
        for name in have:
            before[f"{view}/{name}"] = sorted(n.asset_id for n in dav.lib.list(f"{view}/{name}"))
    assert before, "the mix left no albums or people to remove"
    trash_before = {n.name for n in world.trash()}
    # the core folds the unlinks of an rm -r into the album's trash item when they form one
    # unbroken run (ops.FOLD_GAP); let the mix's last deliberate removals fall outside it
    from photovfs.ops import FOLD_GAP

    time.sleep(FOLD_GAP.total_seconds() + 0.5)
    for view in ("by-album", "by-person"):
        for name in os.listdir(mnt.path(view)):
            shutil.rmtree(mnt.path(view) / name)
        assert os.listdir(mnt.path(view)) == []
    world.check_hashes()
    new_items = [n for n in world.trash() if n.name not in trash_before]
    assert len(new_items) == len(before), [n.name for n in new_items]
    for k, item in enumerate(new_items):
        os.rename(mnt.path(item.path), mnt.path(f"by-date/restored-final-{k}"))
    after = {}
    for view, have in (("by-album", world.albums()), ("by-person", world.people())):
        for name in have:
            after[f"{view}/{name}"] = sorted(n.asset_id for n in dav.lib.list(f"{view}/{name}"))
    assert after == before
    world.check_hashes()
    world.check_by_date()
    world.check_full()

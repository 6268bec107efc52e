"""backup, check, repair and restore. Each returns a report dict; `ok` is True only when green.

Rules: damaged bytes never replace good ones (a source is copied only when it hashes to its
catalogued sha256; a repair only from a copy that does); nothing at a destination is deleted or
overwritten (displaced files move to versions/<generation>/); a run that skipped anything says so
and is not green.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import stat
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..catalog.models import (
    STATUS_TRASHED,
    Album,
    AlbumAsset,
    Asset,
    AssetKeyword,
    AssetPerson,
    Keyword,
    Person,
    Place,
    TrashItem,
)
from ..config import Config, load_config
from ..errors import NotFound, PhotoVFSError
from ..hashing import sha256_file
from ..metadata import media_kind
from ..metadata.kinds import MEDIA_EXTS
from ..names import SIDE_FILE_PATTERNS, fs_to_text, is_side_file, text_to_fs
from ..scan import SKIP_DIRS
from . import quick
from . import walk as find_walk
from .dest import (
    LocalDest,
    RcloneDest,
    SourceChanged,
    VerifyError,
    is_tmp_name,
    open_dest,
)
from .subset import prune_catalog, select_from_catalog, select_from_files, with_sidecars

MANIFEST_HEADER = "#photovfs-manifest-v1\tpath\tsize\tmtime_ns\tsha256\tstack"
DESTS_FILE = "backup-destinations.json"
FIXITY_FILE = "fixity.json"


# ---- manifest ------------------------------------------------------------------------------------
@dataclass
class Entry:
    path: str  # relative, os form (surrogateescape), POSIX separators
    size: int
    mtime_ns: int
    sha256: str
    stack: str = ""


def _esc(p: str) -> str:
    if p.isprintable() and "\\" not in p:  # nearly every path: nothing to escape
        return p
    return p.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _unesc(p: str) -> str:
    out, i = [], 0
    while i < len(p):
        c = p[i]
        if c == "\\" and i + 1 < len(p):
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(p[i + 1], p[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def manifest_bytes(entries: dict[str, Entry]) -> bytes:
    lines = [MANIFEST_HEADER]
    for e in sorted(entries.values(), key=lambda e: e.path):
        lines.append(f"{_esc(e.path)}\t{e.size}\t{e.mtime_ns}\t{e.sha256}\t{e.stack}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def parse_manifest(data: bytes) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        if not line or line.startswith("#"):
            continue
        path, size, mtime, sha, stack = line.split("\t")
        e = Entry(_unesc(path) if "\\" in path else path, int(size), int(mtime), sha, stack)
        out[e.path] = e
    return out


def done_generations(dest) -> list[str]:
    """Generation ids with a DONE marker, oldest first (ids sort by time)."""
    return [g for g in dest.list_dirs("generations") if dest.exists(f"generations/{g}/DONE")]


def read_manifest(dest, gen: str) -> dict[str, Entry]:
    data = dest.read_bytes(f"generations/{gen}/MANIFEST.tsv")
    return parse_manifest(data) if data is not None else {}


def _read_previous(dest, gen: str, recorded) -> tuple[bytes | None, dict[str, Entry] | None]:
    """A generation's manifest as stored, and parsed -- unless its sha256 is `recorded()`'s (a
    run that may have nothing to do: it is parsed later if it is needed after all)."""
    raw = dest.read_bytes(f"generations/{gen}/MANIFEST.tsv")
    if raw is None:
        return None, None
    known = recorded()
    if known is not None and hashlib.sha256(raw).hexdigest() == known:
        return raw, None
    return raw, parse_manifest(raw)


def _done_record(dest, gen: str) -> dict:
    """A finished generation's DONE record ({} when unreadable: nothing is reused from it)."""
    try:
        data = json.loads(dest.read_bytes(f"generations/{gen}/DONE") or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ---- library side --------------------------------------------------------------------------------
TRASH_PREFIX = ".photovfs/trash/"  # where a generation keeps the state folder's trash/ (any --state)
STATE_PREFIX = ".photovfs/"
SIDECARS_PREFIX = ".photovfs/sidecars/"  # STATE/sidecars/ (sidecars of read-only originals)


def _rel(folder: str, filename: str) -> str:
    return text_to_fs(f"{folder}/{filename}" if folder else filename)


def _regular_stat(src: Path | str, rel: str, skip) -> os.stat_result | None:
    """The stat of a file to copy, or None after naming why it is skipped."""
    try:
        st = os.stat(src)
    except OSError as exc:
        skip(rel, f"unreadable: {exc.strerror}")
        return None
    if not stat.S_ISREG(st.st_mode):
        skip(rel, "not a regular file")
        return None
    return st


def state_sidecars(cfg: Config) -> list[tuple[str, Path]]:
    """(manifest path, file) of the XMP sidecars kept in STATE/sidecars/ for originals on read-only
    media; a generation keeps them under .photovfs/sidecars/ whatever --state is, and a restore
    puts them in TARGET/.photovfs/sidecars/, where the scan reads them."""
    root = cfg.state_dir / "sidecars"
    out = []
    for dirpath, _dirs, files in os.walk(root):
        sub = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for f in sorted(files):
            if is_sidecar(f):
                rel = f if sub == "." else f"{sub}/{f}"
                out.append((SIDECARS_PREFIX + rel, Path(dirpath) / f))
    return out


def _label(rel: str) -> str:
    return fs_to_text(rel)


def is_sidecar(rel: str) -> bool:
    return rel.lower().endswith(".xmp")


def is_original(rel: str) -> bool:
    """A manifest path that is an original (not a sidecar, not something in trash)."""
    return not rel.startswith(STATE_PREFIX) and not is_sidecar(rel)


def sqlite_path(cfg: Config) -> Path | None:
    url = cfg.database_url
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    return None


def _sessions(cfg: Config):
    from ..catalog.db import make_engine

    engine = make_engine(cfg.database_url)
    return engine, Session(engine)


def catalog_assets(s: Session) -> list[Asset]:
    return list(s.scalars(select(Asset).where(Asset.status != STATUS_TRASHED)))


def disk_problems(cfg: Config, sidecars: list[str] | None = None,
                  stats: dict[str, tuple[int, int]] | None = None
                  ) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """Walk the originals: ({rel: (kind, detail)} for media-named things that cannot be backed up,
    set of rel of every regular media file). XMP sidecars found are appended to `sidecars`
    (sorted), and (size, mtime_ns) of every regular media file goes to `stats`. GNU find walks
    when it can (walk.py: in C, beside the snapshot), else Python does."""
    found = find_walk.library(str(cfg.library), str(cfg.state_dir), SKIP_DIRS, MEDIA_EXTS,
                              is_side_file, sidecars, stats)
    if found is not None:
        return found
    return disk_problems_py(cfg, sidecars, stats)


#: what a library walk's answer depends on besides the listing (a new photovfs may know more)
_WALK_RULES = repr((quick.VERSION, sorted(MEDIA_EXTS), sorted(SKIP_DIRS), SIDE_FILE_PATTERNS))


def _walk_library(cfg: Config, sidecars: list[str], stats: dict[str, tuple[int, int]],
                  recorded) -> tuple[dict | None, set[str] | None, str | None, bytes | None]:
    """disk_problems, and the fingerprint of find's listing (walk.listing_digest; None without
    find). When the fingerprint is `recorded()`'s, the listing is returned unread instead of
    problems and regular (parse it with _read_listing if it is needed after all)."""
    root, state = str(cfg.library), str(cfg.state_dir)
    listing = find_walk.library_listing(root, state, SKIP_DIRS)
    if listing is None:
        problems, regular = disk_problems_py(cfg, sidecars, stats)
        return problems, regular, None, None
    digest = find_walk.listing_digest(listing, root, state, _WALK_RULES)
    if digest is not None and digest == recorded():
        return None, None, digest, listing
    problems, regular = _read_listing(cfg, listing, sidecars, stats)
    return problems, regular, digest, None


def _read_listing(cfg: Config, listing: bytes, sidecars: list[str],
                  stats: dict[str, tuple[int, int]]) -> tuple[dict, set[str]]:
    found = find_walk.parse_library(listing, str(cfg.library), MEDIA_EXTS, is_side_file,
                                    sidecars, stats)
    return found if found is not None else disk_problems_py(cfg, sidecars, stats)


def disk_problems_py(cfg: Config, sidecars: list[str] | None = None,
                     stats: dict[str, tuple[int, int]] | None = None
                     ) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """disk_problems in Python: one scandir per folder and one stat per media file (os.walk
    would stat every entry once more to tell folders from files); names unreadable folders."""
    problems: dict[str, tuple[str, str]] = {}
    regular: set[str] = set()
    state = str(cfg.state_dir)
    found_sidecars: list[str] = []

    def walk(path: str, reldir: str) -> None:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if not reldir:
                raise
            problems[reldir] = ("UNREADABLE", f"folder unreadable: {exc.strerror}")
            return
        for e in entries:
            name = e.name
            rel = f"{reldir}/{name}" if reldir else name
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if name.startswith(".") or name in SKIP_DIRS or e.path == state:
                    continue
                if media_kind(name) is not None:
                    problems[rel] = ("UNREADABLE", "a folder named like a photo")
                walk(e.path, rel)
                continue
            low = name.lower()
            if low.endswith(".xmp"):  # is_sidecar
                if not is_side_file(name):
                    found_sidecars.append(rel)
                continue
            # media_kind(name) is not None, inlined (a call per file is a third of the walk)
            dot = low.rfind(".")
            if dot <= 0 or low[dot:] not in MEDIA_EXTS or (
                    name[0] == "." and not name[:dot].strip(".")) or is_side_file(name):
                continue
            try:
                st = e.stat()  # follows a symlink, as a copy would
            except OSError as exc:
                kind = "dangling symlink" if e.is_symlink() else exc.strerror
                problems[rel] = ("UNREADABLE", f"unreadable: {kind}")
                continue
            if not stat.S_ISREG(st.st_mode):
                problems[rel] = ("UNREADABLE", "not a regular file")
                continue
            if st.st_size == 0:
                problems[rel] = ("ZERO_SIZE", "zero-byte file")
            regular.add(rel)
            if stats is not None:
                stats[rel] = (st.st_size, st.st_mtime_ns)

    walk(str(cfg.library), "")
    if sidecars is not None:
        sidecars.extend(sorted(found_sidecars))  # (the order find's walk gives them too)
    return problems, regular


def _catalog_differs(view: CatalogView, regular: set[str],
                     stats: dict[str, tuple[int, int]]) -> bool:
    """True when the disk walk shows something the catalog does not describe (a new, missing or
    edited original): then the backup scans first."""
    for rel, _sha, size, mtime_ns, _stack in view.assets:
        if stats.get(rel) != (size, mtime_ns):
            return True
    return len(regular) != len(view.assets)  # every catalogued path is among them: the same set


def _load_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def _save_json(path: Path, data, *, compact: bool = False) -> None:
    """Write atomically. `compact`: one line (json's C encoder; with an indent it encodes in
    Python, ~0.1 s for the fixity log of 10,000 photos)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True) if compact
                   else json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def known_destinations(cfg: Config) -> list[str]:
    return [d["dest"] for d in _load_json(cfg.state_dir / DESTS_FILE, [])]


def _remember_destination(cfg: Config, url: str, gen: str) -> None:
    data = _load_json(cfg.state_dir / DESTS_FILE, [])
    kept: dict = next((d for d in data if d["dest"] == url), {})  # e.g. a `backup add` schedule
    data = [d for d in data if d["dest"] != url]
    data.append({**kept, "dest": url, "last_generation": gen, "at": datetime.now(UTC).isoformat()})
    _save_json(cfg.state_dir / DESTS_FILE, data)


def export_metadata(s: Session) -> dict:
    paths = {i: f"{f}/{n}" if f else n for i, f, n in
             s.connection().execute(select(Asset.id, Asset.folder, Asset.filename)).all()}

    def members(rows) -> list[str]:
        return sorted(paths[i] for i in rows if i in paths)

    people = [{"name": p.name, "trashed": p.trashed,
               "members": members(s.scalars(select(AssetPerson.asset_id).where(
                   AssetPerson.person_id == p.id, AssetPerson.rejected.is_(False))))}
              for p in s.scalars(select(Person).order_by(Person.id)) if p.name]
    albums = [{"path": a.path, "trashed": a.trashed,
               "members": members(s.scalars(select(AlbumAsset.asset_id).where(
                   AlbumAsset.album_id == a.id)))}
              for a in s.scalars(select(Album).order_by(Album.path))]
    places = [{"country": p.country, "region": p.region, "city": p.city,
               "members": members(s.scalars(select(Asset.id).where(Asset.place_id == p.id)))}
              for p in s.scalars(select(Place).order_by(Place.id))]
    keywords = [{"name": k.name, "members": members(s.scalars(select(AssetKeyword.asset_id).where(
        AssetKeyword.keyword_id == k.id)))} for k in s.scalars(select(Keyword).order_by(Keyword.name))]
    groups: dict[int, list[str]] = {}
    for aid, stack_id in s.execute(select(Asset.id, Asset.stack_id).where(
            Asset.stack_id.is_not(None), Asset.status != STATUS_TRASHED)):
        if stack_id is not None:
            groups.setdefault(stack_id, []).append(paths[aid])
    stacks = [sorted(m) for _, m in sorted(groups.items()) if len(m) > 1]
    return {"version": 1, "people": people, "albums": albums, "places": places,
            "keywords": keywords, "stacks": stacks}


def snapshot_catalog(src: Path, dst: Path, known_sha256: str | None = None) -> str:
    """An atomic copy of a live SQLite catalog (online backup API); returns its sha256. Checked
    with quick_check: every page and b-tree of the copy is read back (integrity_check also
    cross-checks each index against its table, which costs twice as long and checks the source's
    contents, not the copy; `check` runs it on the live catalog) -- unless its bytes equal
    `known_sha256`, a snapshot that passed it before (an unchanged catalog copies to the same
    bytes). The copy is a scratch file until the destination's sync: no journal, no fsync here."""
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as a, sqlite3.connect(dst) as b:
        b.execute("PRAGMA journal_mode=OFF")
        b.execute("PRAGMA synchronous=OFF")
        a.backup(b)
        b.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
    a.close()
    b.close()
    sha = sha256_file(dst)
    if sha == known_sha256:
        return sha
    with sqlite3.connect(f"file:{dst}?mode=ro", uri=True) as b:
        res = b.execute("PRAGMA quick_check").fetchall()
    b.close()
    if res != [("ok",)]:
        raise VerifyError(f"catalog snapshot fails quick_check: {res[:3]}")
    return sha


def pg_tool(name: str) -> str | None:
    """pg_dump / pg_restore: $PHOTOVFS_PG_BIN, the newest server install, or PATH."""
    import glob
    import shutil

    for d in [os.environ.get("PHOTOVFS_PG_BIN", "")] + sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
            if p.split("/")[-2].isdigit() else 0, reverse=True):
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name)


def pg_dump(url: str, out: Path, snapshot: str | None = None) -> None:
    """`pg_dump --format=custom` of the catalog (in `snapshot`, an exported transaction snapshot,
    so that the dump and the file list describe the same moment), checked with `pg_restore -l`."""
    import subprocess

    from sqlalchemy.engine import make_url

    exe, lister = pg_tool("pg_dump"), pg_tool("pg_restore")
    if exe is None or lister is None:
        raise VerifyError("pg_dump/pg_restore not found (install postgresql-client)")
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    conninfo = u.set(drivername="postgresql", password=None, query={}) \
        .render_as_string(hide_password=False)
    cmd = [exe, "--format=custom", "--no-owner", f"--file={out}", f"--dbname={conninfo}"]
    if snapshot:
        cmd.append(f"--snapshot={snapshot}")
    proc = subprocess.run(cmd, env=env, capture_output=True)
    if proc.returncode != 0:
        raise VerifyError(f"pg_dump failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    proc = subprocess.run([lister, "--list", str(out)], capture_output=True)
    if proc.returncode != 0 or b"TABLE DATA" not in proc.stdout:
        raise VerifyError("the pg_dump archive does not read back")


@dataclass
class CatalogView:
    """What one generation describes, read from one consistent catalog state."""

    assets: list[tuple]  # (rel: the os-form path, sha256, size, mtime_ns, stack_id)
    trash: list[tuple[str, str | None]]  # (absolute file in STATE/trash, expected sha256 or None)
    meta: dict
    snapshot: Path | None = None  # the catalog snapshot file to store
    snapshot_name: str = "catalog.db"
    snapshot_sha256: str | None = None  # a SQLite snapshot's: equal bytes = an unchanged catalog
    rows: bool = True  # False: only the snapshot was taken (see read_catalog's rows_needed)

    def rels(self) -> set[str]:
        return {a[0] for a in self.assets}


def _read_catalog(s: Session) -> tuple[list[tuple], list[tuple[str, str | None]], dict]:
    assets = [(_rel(f, n), *rest) for f, n, *rest in s.connection().execute(
        select(Asset.folder, Asset.filename, Asset.sha256, Asset.size, Asset.mtime_ns,
               Asset.stack_id).where(Asset.status != STATUS_TRASHED)).all()]
    trash: list[tuple[str, str | None]] = []
    for it in s.scalars(select(TrashItem).where(TrashItem.file.is_not(None))):
        assert it.file is not None
        data = json.loads(it.payload or "{}")
        expected = None
        if it.kind == "asset" and it.asset_id is not None:
            expected = s.scalar(select(Asset.sha256).where(Asset.id == it.asset_id))
        elif it.kind == "version":
            expected = data.get("sha256")
        trash.append((it.file, expected))
        if data.get("sidecar"):
            trash.append((str(Path(it.file).parent / data["sidecar"]), None))
    return assets, trash, export_metadata(s)


def _sqlite_catalog(db: Path) -> tuple[list[tuple], list[tuple[str, str | None]], dict]:
    """What `_read_catalog` reads, from a SQLite snapshot with plain sqlite3 and one query per
    table: at 10,000 photos the ORM's row handling (and a query per album or person) costs more
    than the data, and a no-change backup is mostly this and two walks. Same result, same order."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        q = c.execute
        rows = q("SELECT folder, filename, sha256, size, mtime_ns, stack_id, id, status "
                 "FROM assets").fetchall()  # one pass over the table for all three uses
        paths = {r[6]: f"{r[0]}/{r[1]}" if r[0] else r[1] for r in rows}
        shas = {r[6]: r[2] for r in rows}
        live = [r for r in rows if r[7] != STATUS_TRASHED]
        assets = []
        for _f, _n, sha, size, mtime, stack, i, _st in live:
            p = paths[i]
            assets.append((p if p.isascii() else text_to_fs(p), sha, size, mtime, stack))
        trash: list[tuple[str, str | None]] = []
        for kind, asset_id, file, payload in q(
                "SELECT kind, asset_id, file, payload FROM trash_items WHERE file IS NOT NULL"):
            data = json.loads(payload or "{}")
            expected = None
            if kind == "asset" and asset_id is not None:
                expected = shas.get(asset_id)
            elif kind == "version":
                expected = data.get("sha256")
            trash.append((file, expected))
            if data.get("sidecar"):
                trash.append((str(Path(file).parent / data["sidecar"]), None))

        def grouped(sql: str) -> dict:
            out: dict = {}
            for key, aid in q(sql):
                if aid in paths:
                    out.setdefault(key, []).append(paths[aid])
            return out

        in_person = grouped("SELECT person_id, asset_id FROM asset_people WHERE rejected IS 0")
        in_album = grouped("SELECT album_id, asset_id FROM album_assets")
        in_place = grouped("SELECT place_id, id FROM assets WHERE place_id IS NOT NULL")
        in_kw = grouped("SELECT keyword_id, asset_id FROM asset_keywords")
        people = [{"name": name, "trashed": bool(tr), "members": sorted(in_person.get(i, []))}
                  for i, name, tr in q("SELECT id, name, trashed FROM people ORDER BY id") if name]
        albums = [{"path": path, "trashed": bool(tr), "members": sorted(in_album.get(i, []))}
                  for i, path, tr in q("SELECT id, path, trashed FROM albums ORDER BY path")]
        places = [{"country": co, "region": re_, "city": ci, "members": sorted(in_place.get(i, []))}
                  for i, co, re_, ci in q("SELECT id, country, region, city FROM places "
                                          "ORDER BY id")]
        keywords = [{"name": name, "members": sorted(in_kw.get(i, []))}
                    for i, name in q("SELECT id, name FROM keywords ORDER BY name")]
        groups: dict[int, list[str]] = {}
        for _f, _n, _sha, _size, _mtime, stack_id, aid, _st in live:
            if stack_id is not None:
                groups.setdefault(stack_id, []).append(paths[aid])
        stacks = [sorted(m) for _, m in sorted(groups.items()) if len(m) > 1]
    finally:
        c.close()
    meta = {"version": 1, "people": people, "albums": albums, "places": places,
            "keywords": keywords, "stacks": stacks}
    return assets, trash, meta


def read_catalog(cfg: Config, td: Path, library, known_sha256: str | None = None,
                 rows_needed=None) -> CatalogView:
    """Snapshot the catalog first, then read assets, trash and metadata *from that snapshot*: files
    ingested or albums edited while the backup runs belong to the next generation, never half to
    this one (no catalog row without its file, no album member without its row). `library()`
    opens the Library, only when it is needed: a PostgreSQL catalog, a catalog not made yet, or
    one whose schema is older than the plain reads (opening it migrates it). With
    `rows_needed(sha256)` False, only the SQLite snapshot is taken (`_with_rows` reads it later)."""
    dbp = sqlite_path(cfg)
    if dbp is not None and dbp.exists():
        snap = td / "catalog.db"
        sha = snapshot_catalog(dbp, snap, known_sha256)
        if rows_needed is not None and not rows_needed(sha):
            return CatalogView([], [], {}, snap, "catalog.db", sha, rows=False)
        try:
            assets, trash, meta = _sqlite_catalog(snap)
        except sqlite3.OperationalError:  # an older schema: migrate, snapshot again
            library()
            sha = snapshot_catalog(dbp, snap)
            assets, trash, meta = _sqlite_catalog(snap)
        return CatalogView(assets, trash, meta, snap, "catalog.db", sha)
    lib = library()
    if dbp is not None:  # made just now by opening the library
        return read_catalog(cfg, td, library, known_sha256)
    if lib.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        snap = td / "catalog.pgdump"
        with lib.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                sid = conn.scalar(text("SELECT pg_export_snapshot()"))
                pg_dump(cfg.database_url, snap, sid)
                with Session(bind=conn) as s:
                    assets, trash, meta = _read_catalog(s)
        return CatalogView(assets, trash, meta, snap, "catalog.pgdump")
    with lib.session() as s:
        assets, trash, meta = _read_catalog(s)
    return CatalogView(assets, trash, meta, None)


def _with_rows(view: CatalogView) -> CatalogView:
    """A snapshot-only view (rows=False) with its rows read from that same snapshot."""
    assert view.snapshot is not None
    assets, trash, meta = _sqlite_catalog(view.snapshot)
    return CatalogView(assets, trash, meta, view.snapshot, view.snapshot_name,
                       view.snapshot_sha256)


class _Laps:
    """Wall-clock seconds per stage of a run (report["stages"]): where a no-change run's time goes,
    measured by the run itself rather than guessed (the benchmark prints them with --profile)."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._t = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.stages[name] = round(self.stages.get(name, 0.0) + now - self._t, 4)
        self._t = now


def _timed(stages: dict[str, float], name: str, fn, *args):
    """fn(*args), its wall-clock seconds kept in stages[name] (for work run in a thread)."""
    t = time.monotonic()
    try:
        return fn(*args)
    finally:
        stages[name] = round(time.monotonic() - t, 4)


# ---- backup --------------------------------------------------------------------------------------
def backup(library: Path, dest_url: str, *, max_change: float = 0.20, force: bool = False,
           state_dir: Path | None = None, config_file: Path | None = None,
           verify_sources: bool | str = True, scan: bool = True, workers: int | None = None) -> dict:
    """Make a generation. `verify_sources`: True ("due") re-hashes unchanged sources whose last
    fixity verification is older than `background.fixity_days` or failed; "all" re-hashes every
    unchanged source; False none (files being copied are always hashed while they are copied)."""
    from ..library import Library

    t0 = time.monotonic()
    laps = _Laps()
    cfg = load_config(Path(library), config_file=config_file, state_dir=state_dir)
    opened: list[Library] = []

    def open_library() -> Library:
        """The Library, opened only for what needs it (a scan, a catalog that is not SQLite)."""
        if not opened:
            opened.append(Library(cfg))
            laps("open library")
        return opened[0]

    report: dict = {"command": "backup", "library": str(cfg.library), "dest": dest_url,
                    "ok": False, "generation": None, "copied": [], "displaced": [],
                    "unchanged": 0, "skipped": [], "corrupt": [], "stopped": None,
                    "bytes_copied": 0, "rehashed": 0, "flagged": [], "stages": laps.stages}
    mode = "due" if verify_sources is True else "none" if verify_sources is False \
        else str(verify_sources)
    td_obj = tempfile.TemporaryDirectory(prefix="photovfs-backup-")
    td = Path(td_obj.name)
    try:
        dest = open_dest(dest_url)
        dest.batch = True  # one sync() before the generation's files, instead of one per copy
        report["dest"] = dest.url
        gens = done_generations(dest)
        report["previous_generation"] = gens[-1] if gens else None
        prev_done = _done_record(dest, gens[-1]) if gens else {}
        sidecars: list[str] = []
        stats: dict[str, tuple[int, int]] = {}
        laps("start")
        # the two walks (library, destination) and the manifest read overlap with the catalog
        # snapshot: stat() and SQLite's backup release the GIL; either order of walk and
        # snapshot is handled below (a file filed in between is looked at again)
        from concurrent.futures import ThreadPoolExecutor

        known_sha = prev_done.get("catalog_sha256")
        prev_raw: bytes | None = None
        stages = laps.stages
        with ThreadPoolExecutor(4) as pool:
            record_read = pool.submit(quick.load, cfg.state_dir, dest.url) if gens \
                and mode != "all" else None

            def recorded(key: str):
                rec = record_read.result() if record_read is not None else None
                return rec.get(key) if rec is not None else None

            walked = pool.submit(_timed, stages, "walk library (thread)", _walk_library, cfg,
                                 sidecars, stats, lambda: recorded("library_digest"))
            if dest.parallel:  # (an rclone destination keeps one listing: one thread uses it)
                listed = pool.submit(_timed, stages, "walk destination (thread)",
                                     dest.list_files, "current")
                manifest_read = pool.submit(
                    _timed, stages, "read manifest (thread)", _read_previous, dest, gens[-1],
                    lambda: recorded("manifest_sha256")) if gens else None
            fixity_read = pool.submit(_timed, stages, "read fixity log (thread)", _load_json,
                                      cfg.state_dir / FIXITY_FILE, {})

            def rows_needed(sha: str) -> bool:
                """Catalog rows are read unless the catalog may be the recorded one."""
                return recorded("catalog_sha256") != sha

            view = read_catalog(cfg, td, open_library, known_sha, rows_needed)
            laps("snapshot + read catalog")
            problems, regular, library_digest, listing = walked.result()
            if dest.parallel:
                present = listed.result()  # replicas actually there (a crash, a tampered dest)
                prev_raw, parsed = manifest_read.result() if manifest_read is not None \
                    else (None, None)
            else:
                present = dest.list_files("current")
                prev_raw, parsed = _read_previous(dest, gens[-1], lambda: None) if gens \
                    else (None, None)
            fixity = fixity_read.result()
            laps("wait for walks")
        now = time.time()
        days = float(getattr(getattr(cfg, "background", None), "fixity_days", 30))
        side_state = state_sidecars(cfg)
        fast = not view.rows and quick.unchanged(
            record_read.result() if record_read is not None else None, prev_done=prev_done,
            snapshot_sha256=view.snapshot_sha256, library_digest=library_digest,
            problems=problems, stats=stats,
            sidecars=sidecars, state_sidecars=[f"{r}\t{p}" for r, p in side_state],
            present=present, prev_raw=prev_raw, fixity=fixity if mode == "due" else None,
            now=now, days=days)
        report["unchanged_fast"] = fast
        laps("compare with the last run")
        new: dict[str, Entry] = {}
        extra_stats: dict[str, tuple] = {}  # rel -> (source, size, mtime_ns, expected sha)
        manifest: bytes | None = None  # None: the previous generation's, as it is
        if fast:  # every input equals the last complete run's: nothing to copy, move or re-read
            rec = record_read.result() if record_read is not None else {}
            assert rec is not None
            fixity_before = fixity
            trash_root = cfg.state_dir / "trash"
            report.update(unchanged=rec["files"], change_ratio=0.0, recopied=[], deleted=[],
                          broken_stacks=[], scanned=False)
            gen = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            report["generation"] = gen
            view.meta = rec["meta"]
            n_files = rec["files"]
        else:
            if not view.rows:  # the snapshot was taken; its rows are needed after all
                view = _with_rows(view)
            if listing is not None:  # (the same listing as last time, not read yet)
                problems, regular = _read_listing(cfg, listing, sidecars, stats)
            assert problems is not None and regular is not None
            prev = parsed if parsed is not None else \
                parse_manifest(prev_raw) if prev_raw is not None else {}
            report["scanned"] = False
            if scan and _catalog_differs(view, regular, stats):  # scan only when the disk moved on
                sr = open_library().scan()
                report["scanned"] = True
                report["scan_errors"] = sr.errors
                shutil.rmtree(td, ignore_errors=True)
                td.mkdir()
                view = read_catalog(cfg, td, open_library)
                laps("scan")
            # left by a run that was killed (the substring test first: one regex per file is not free)
            for rel in [r for r in present if ".pvb-" in r and is_tmp_name(r)]:
                dest.delete_tmp(f"current/{rel}")
                del present[rel]
            recopy: set[str] = set()
            fixity_before = dict(fixity)  # entries are replaced, never changed in place
            # labels verified recently and found good (not due for re-reading)
            cutoff = now - days * 86400
            fresh = {k for k, v in fixity.items() if v.get("ok", True)
                     and v.get("verified_at", 0.0) >= cutoff} if mode == "due" else set()
            to_copy: list[tuple[Path | str, Entry, str | None]] = []  # (source, entry, expected sha)
            skipped_rels: set[str] = set()

            def skip(rel: str, why: str) -> None:
                skipped_rels.add(rel)
                report["skipped"].append({"path": _label(rel), "reason": why})
                if rel in prev:  # the replica stays; the manifest keeps describing it
                    new[rel] = prev[rel]

            stack_of: dict[tuple[str, str], str] = {}  # (folder rel, stem) -> stack group, for sidecars
            lib_root = str(cfg.library)
            for rel, sha, size, mtime_ns, stack_id in view.assets:
                group = "" if stack_id is None else str(stack_id)
                if group:
                    d, _, name = rel.rpartition("/")
                    stack_of[(d, name.rpartition(".")[0] or name)] = group
                    stack_of[(d, name)] = group
                src = f"{lib_root}/{rel}"  # a string: a Path per photo costs more than the rest
                if problems and rel in problems:
                    if problems[rel][0] != "ZERO_SIZE":
                        skip(rel, problems[rel][1])
                        continue
                    # copied as it is (the restored library must equal this one), but named: an empty
                    # photo is damage, and the run is not green
                    report["flagged"].append({"path": _label(rel), "reason": problems[rel][1]})
                seen = stats.get(rel)
                if seen is None:  # not there when the disk was walked (filed since?): look again
                    st = _regular_stat(src, rel, skip)
                    if st is None:
                        continue
                    seen = (st.st_size, st.st_mtime_ns)
                if seen[0] != size or seen[1] != mtime_ns:
                    skip(rel, "changed since the catalog read it (edited outside): run scan")
                    continue
                old = prev.get(rel)
                if old is None or old.sha256 != sha or old.size != size:
                    to_copy.append((src, Entry(rel, size, mtime_ns, sha, group), sha))
                    continue
                # (the previous entry itself when it says the same: no new object per photo)
                entry = old if old.mtime_ns == mtime_ns and old.stack == group \
                    else Entry(rel, size, mtime_ns, sha, group)
                if present.get(rel) != size:
                    recopy.add(rel)  # the replica is gone or damaged: copy again (the old one moves aside)
                    to_copy.append((src, entry, sha))
                    continue
                if mode == "all" or (mode == "due" and (
                        rel if rel.isascii() else fs_to_text(rel)) not in fresh):
                    label = fs_to_text(rel)
                    try:
                        got = sha256_file(src)
                    except OSError as exc:
                        skip(rel, f"unreadable: {exc.strerror}")
                        continue
                    report["rehashed"] += 1
                    fixity[label] = {"verified_at": time.time(), "ok": got == sha}
                    if got != sha:
                        report["corrupt"].append(
                            {"path": _label(rel), "reason": "content changed while size and mtime "
                             "did not (bit rot): the good replica was kept; run repair"})
                        skipped_rels.add(rel)
                        new[rel] = old
                        continue
                new[rel] = entry
                report["unchanged"] += 1
            # problems the catalog does not know about (a zero-byte or unreadable new file)
            catalogued = view.rels()
            for rel, (_kind, why) in sorted(problems.items()):
                if rel not in catalogued and rel not in skipped_rels:  # (a new zero-byte file: scan)
                    skip(rel, why)
            # sidecars and trash: no catalogued hash for most; unchanged = same size and mtime
            extra: list[tuple[str, Path | str, str | None, str]] = []
            for rel in sidecars:
                d, _, name = rel.rpartition("/")
                stem = name[:-4]
                group = stack_of.get((d, stem)) or stack_of.get((d, stem.rpartition(".")[0])) or ""
                extra.append((rel, cfg.library / rel, None, group))
            for rel, side in side_state:  # read-only originals keep theirs in STATE/sidecars
                d, _, name = rel[len(SIDECARS_PREFIX):].rpartition("/")
                extra.append((rel, side, None, stack_of.get((d, name[:-4]), "")))
            trash_root = cfg.state_dir / "trash"
            for file, expected in view.trash:
                try:
                    sub = Path(file).relative_to(trash_root).as_posix()
                except ValueError:
                    skip(os.fsencode(file).decode("utf-8", "surrogateescape"),
                         "a trash file outside the state folder's trash/")
                    continue
                extra.append((TRASH_PREFIX + sub, Path(file), expected, "trash"))
            for rel, source, expected, group in extra:
                st = _regular_stat(source, rel, skip)
                if st is None:
                    continue
                extra_stats[rel] = (os.fspath(source), st.st_size, st.st_mtime_ns, expected)
                old = prev.get(rel)
                if old is not None and old.size == st.st_size and present.get(rel) == st.st_size and (
                        old.sha256 == expected if expected else old.mtime_ns == st.st_mtime_ns):
                    new[rel] = Entry(rel, old.size, old.mtime_ns, old.sha256, group)
                    report["unchanged"] += 1
                else:
                    if old is not None and old.size == st.st_size and present.get(rel) != st.st_size:
                        recopy.add(rel)
                    to_copy.append((source, Entry(rel, st.st_size, st.st_mtime_ns, expected or "", group),
                                    expected))
            copying = {e.path for _, e, _ in to_copy}
            deleted = [rel for rel in prev if rel not in new and rel not in copying
                       and rel not in skipped_rels]
            orig_prev = [r for r in prev if not r.startswith(STATE_PREFIX)
                         and not r.lower().endswith(".xmp")]  # is_original, inlined (10,000 calls)
            rewritten = [e.path for _, e, _ in to_copy if e.path in prev and e.path not in recopy
                         and is_original(e.path)]
            deleted_orig = [r for r in deleted if is_original(r)]
            report["recopied"] = [_label(r) for r in sorted(recopy)]
            report["deleted"] = [_label(r) for r in deleted if is_original(r)]
            if orig_prev:
                ratio = (len(deleted_orig) + len(rewritten)) / len(orig_prev)
                report["change_ratio"] = round(ratio, 4)
                if ratio > max_change and not force:
                    report["stopped"] = (
                        f"mass-change guard: {len(deleted_orig)} deleted and {len(rewritten)} rewritten "
                        f"of {len(orig_prev)} originals since generation {gens[-1]} ({ratio:.0%} > "
                        f"{max_change:.0%}); nothing was written. Check the library (ransomware, a "
                        f"failed disk, a wrong path?) and use --force if this is intended.")
                    return report
            gen = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            report["generation"] = gen
            for rel in deleted:
                if dest.exists(f"current/{rel}"):
                    dest.move(f"current/{rel}", f"versions/{gen}/{rel}")
                    report["displaced"].append({"path": _label(rel), "why": "deleted"})

            def put(item: tuple[Path | str, Entry, str | None]):
                src, e, expected = item
                try:
                    displaced = e.path in present
                    got = dest.put(src, f"current/{e.path}", expected,
                                   displace_to=f"versions/{gen}/{e.path}", mtime_ns=e.mtime_ns)
                    return item, displaced, got, None
                except (OSError, VerifyError) as exc:  # SourceChanged is a VerifyError
                    return item, False, None, exc

            nworkers = workers or (min(4, os.cpu_count() or 1) if dest.parallel else 1)
            if nworkers > 1 and len(to_copy) > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(nworkers) as pool:
                    results = list(pool.map(put, sorted(to_copy, key=lambda t: t[1].path)))
            else:
                results = [put(t) for t in to_copy]
            for (_src, e, expected), displaced, got, err in results:
                if isinstance(err, SourceChanged):
                    report["corrupt"].append({"path": _label(e.path), "reason": str(err)})
                    skipped_rels.add(e.path)
                    if is_original(e.path):
                        fixity[fs_to_text(e.path)] = {"verified_at": time.time(), "ok": False}
                    if e.path in prev:
                        new[e.path] = prev[e.path]
                    continue
                if err is not None:
                    skip(e.path, f"copy failed: {err}")
                    continue
                if displaced:
                    report["displaced"].append({"path": _label(e.path), "why": "changed"})
                if not expected and got is not None:  # a sidecar may have been rewritten meanwhile
                    e.sha256, e.size = got
                elif is_original(e.path):
                    fixity[fs_to_text(e.path)] = {"verified_at": time.time(), "ok": True}
                new[e.path] = e
                report["copied"].append(_label(e.path))
                report["bytes_copied"] += e.size
            # a stack (Live Photo, RAW+JPEG, sidecars) with a member left out is named as such
            groups: dict[str, list[str]] = {}
            for rel, *_rest, stack_id in view.assets:
                if stack_id is not None:
                    groups.setdefault(str(stack_id), []).append(rel)
            report["broken_stacks"] = [
                {"stack": g, "members": [_label(m) for m in sorted(ms)],
                 "left_out": [_label(m) for m in sorted(ms) if m in skipped_rels]}
                for g, ms in sorted(groups.items()) if len(ms) > 1 and any(m in skipped_rels for m in ms)]
            # the same entries as the previous generation: its manifest, as it is
            manifest = None if prev_raw is not None and new == prev else manifest_bytes(new)
            n_files = len(new)
        # the generation's own files, then make everything durable, verify, then DONE
        laps("compare + copy")
        gdir = f"generations/{gen}"
        reused, manifest = _write_generation_files(
            dest, gdir, gens[-1] if gens else None, manifest, prev_raw, prev_done, view,
            dict(view.meta, trash_root=str(trash_root), generation=gen))
        if view.snapshot is None:
            report["skipped"].append({"path": "catalog", "reason": "no snapshot for this "
                                      "database engine"})
        laps("write generation files")
        dest.sync()
        laps("sync")
        # verify: manifest reads back, every file it lists is present with its size (listed
        # again when this run changed anything in current/; else the listing it started from is
        # the one its decisions were checked against)
        # (a run that found every input equal to the last one's listed current/ as that run left
        # it, and its manifest is that run's: nothing more to compare)
        if dest.read_bytes(f"{gdir}/MANIFEST.tsv") != manifest:
            raise VerifyError("MANIFEST.tsv does not read back")
        if report["copied"] or report["displaced"] or report["skipped"] or report["corrupt"]:
            present = dest.list_files("current")
        missing = [e.path for e in new.values() if present.get(e.path) != e.size]
        if missing:
            raise VerifyError(f"replica incomplete: {[_label(m) for m in missing[:5]]}")
        complete = not report["skipped"] and not report["corrupt"] and not report["flagged"]
        dest.batch = False
        dest.write_bytes(f"{gdir}/DONE", json.dumps(
            {"generation": gen, "complete": complete, "files": n_files,
             "catalog": view.snapshot_name if view.snapshot is not None else None,
             "catalog_sha256": view.snapshot_sha256, "linked_from_previous": reused,
             "skipped": report["skipped"], "corrupt": report["corrupt"],
             "flagged": report["flagged"], "broken_stacks": report["broken_stacks"]}, indent=1).encode())
        laps("verify + DONE")
        _remember_destination(cfg, dest.url, gen)
        if fixity != fixity_before:
            _save_json(cfg.state_dir / FIXITY_FILE, fixity, compact=True)
        if not fast:
            _record_run(cfg, dest.url, complete, view, new, manifest, present, problems, stats,
                        sidecars, side_state, extra_stats, library_digest)
        laps("state files")
        report["files"] = n_files
        report["ok"] = complete
        return report
    except (OSError, VerifyError) as exc:
        report["error"] = f"the generation was not finished (no DONE marker): {exc}"
        report["ok"] = False
        return report
    finally:
        td_obj.cleanup()
        report["seconds"] = round(time.monotonic() - t0, 3)
        for lib in opened:
            lib.close()


def _write_generation_files(dest, gdir: str, prev_gen: str | None, manifest: bytes | None,
                            prev_raw: bytes | None, prev_done: dict, view: CatalogView,
                            meta: dict) -> tuple[list[str], bytes]:
    """MANIFEST.tsv, metadata.json and the catalog snapshot of a generation (durable at the next
    dest.sync()); returns the names linked and the manifest's bytes. `manifest` None means the
    previous generation's (the same entries): that one, or a snapshot with the same sha256, is
    hard-linked to the previous generation's file instead of written again (a local folder that
    allows links; elsewhere it is written): every generation still holds plain files, and a
    generation's files are never changed, so sharing them is safe (deleting an old generation
    leaves the newer one whole)."""
    reused: list[str] = []
    if manifest is None:
        assert prev_gen is not None and prev_raw is not None
        manifest = prev_raw
        if dest.link(f"generations/{prev_gen}/MANIFEST.tsv", f"{gdir}/MANIFEST.tsv", len(prev_raw)):
            reused.append("MANIFEST.tsv")
    if not reused:
        dest.write_bytes(f"{gdir}/MANIFEST.tsv", manifest)
    dest.write_bytes(f"{gdir}/metadata.json",
                     json.dumps(meta, ensure_ascii=False).encode())  # (indent: 10x slower)
    if view.snapshot is None:
        return reused, manifest
    name = view.snapshot_name
    if prev_gen is not None and view.snapshot_sha256 is not None \
            and prev_done.get("catalog_sha256") == view.snapshot_sha256 \
            and prev_done.get("catalog") == name and dest.link(
                f"generations/{prev_gen}/{name}", f"{gdir}/{name}", view.snapshot.stat().st_size):
        reused.append(name)
    else:  # (our own temporary file: put hashes the bytes it writes, no second read first)
        dest.put(view.snapshot, f"{gdir}/{name}", view.snapshot_sha256)
    return reused, manifest


def _record_run(cfg: Config, dest_url: str, complete: bool, view: CatalogView,
                new: dict[str, Entry], manifest: bytes, present: dict[str, int], problems: dict,
                stats: dict, sidecars: list[str], side_state: list[tuple[str, Path]],
                extra_stats: dict[str, tuple], library_digest: str | None) -> None:
    """Record this run's inputs for quick.unchanged, when the next run given the same inputs is
    certain to find nothing to do: a complete run of a SQLite catalog whose walk matches the
    catalog and whose entries for sidecars and trash match the stat()s it compared them by.
    Otherwise drop any older record (the next run takes the general path)."""
    ok = complete and view.snapshot_sha256 is not None and view.rows and not problems \
        and len(stats) == len(view.assets) and not any(".pvb-" in r for r in present)
    if ok:
        for rel, _sha, size, mtime_ns, _stack in view.assets:
            if stats.get(rel) != (size, mtime_ns):
                ok = False
                break
    extras: dict[str, tuple[str, int, int]] = {}
    for rel, (source, size, mtime_ns, expected) in extra_stats.items():
        e = new.get(rel)
        if e is None or e.size != size or (not expected and e.mtime_ns != mtime_ns):
            ok = False
        extras[rel] = (source, size, mtime_ns)
    if not ok:
        quick.drop(cfg.state_dir, dest_url)
        return
    quick.save(cfg.state_dir, dest_url, {
        "catalog_sha256": view.snapshot_sha256, "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "files": len(new), "meta": view.meta, "stats": stats, "sidecars": sidecars,
        "state_sidecars": [f"{r}\t{p}" for r, p in side_state], "present": present,
        "extras": extras, "labels": [fs_to_text(r) for r, *_ in view.assets],
        "library_digest": library_digest})


# ---- check ---------------------------------------------------------------------------------------
def parse_budget(text: str | None, total: int) -> int | None:
    if not text or text in ("all", "100%"):
        return None
    t = text.strip().upper()
    if t.endswith("%"):
        return int(total * float(t[:-1]) / 100)
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(t)


def check(library: Path, *, budget: str | None = None, state_dir: Path | None = None,
          config_file: Path | None = None, record: bool = True, replicas: bool = False,
          download: int = 0, dests: list[str] | None = None) -> dict:
    """Report every way the library differs from its catalog; change nothing but the fixity log.
    `replicas`: also compare each known destination's newest generation with the catalog, and
    re-hash the real bytes of `download` files fetched from each (see replicas.py)."""
    t0 = time.monotonic()
    cfg = load_config(Path(library), config_file=config_file, state_dir=state_dir)
    findings: list[dict] = []
    report: dict = {"command": "check", "library": str(cfg.library), "findings": findings}

    def find(kind: str, rel_or_label: str, detail: str) -> None:
        findings.append({"kind": kind, "path": rel_or_label, "detail": detail})

    dbp = sqlite_path(cfg)
    if dbp is not None:
        if not dbp.exists():
            find("CATALOG", str(dbp), "the catalog is missing")
            report["ok"] = False
            return report
        try:
            with sqlite3.connect(f"file:{dbp}?mode=ro", uri=True) as c:
                res = c.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as exc:
            res = [(str(exc),)]
        if res != [("ok",)]:
            find("CATALOG", str(dbp), f"integrity_check: {'; '.join(r[0] for r in res[:5])}")
    engine, s = _sessions(cfg)
    try:
        assets = [(a.folder, a.filename, a.sha256, a.size, a.mtime_ns) for a in catalog_assets(s)]
    except Exception as exc:  # a catalog too damaged to read: that is the finding
        find("CATALOG", cfg.database_url, f"cannot read the assets: {exc.__class__.__name__}")
        report["ok"] = False
        return report
    finally:
        s.close()
        engine.dispose()
    problems, regular = disk_problems(cfg)
    fixity_path = cfg.state_dir / FIXITY_FILE
    fixity = _load_json(fixity_path, {})
    to_hash: list[tuple[str, str, int]] = []
    catalogued = set()
    for folder, filename, sha, size, mtime_ns in assets:
        rel = _rel(folder, filename)
        catalogued.add(rel)
        label = _label(rel)
        if rel in problems:
            find(problems[rel][0], label, problems[rel][1])
            continue
        try:
            st = os.stat(cfg.library / rel)
        except FileNotFoundError:
            find("MISSING", label, "catalogued but not on disk")
            continue
        except OSError as exc:
            find("UNREADABLE", label, f"unreadable: {exc.strerror}")
            continue
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            find("EDITED", label, "edited outside photovfs (new size/mtime): rescan")
            continue
        to_hash.append((rel, sha, size))
    for rel in sorted(set(problems) - catalogued):
        find(problems[rel][0], _label(rel), problems[rel][1])
    for rel in sorted(regular - catalogued - set(problems)):
        find("UNTRACKED", _label(rel), "a media file the catalog does not know: scan")
    total = sum(size for _, _, size in to_hash)
    limit = parse_budget(budget, total)
    to_hash.sort(key=lambda t: (fixity.get(_label(t[0]), {}).get("verified_at", 0.0), t[0]))
    read = hashed = 0
    for rel, sha, size in to_hash:
        if limit is not None and read + size > limit and hashed > 0:
            break
        try:
            got = sha256_file(cfg.library / rel)
        except OSError as exc:
            find("UNREADABLE", _label(rel), f"unreadable: {exc.strerror}")
            continue
        read += size
        hashed += 1
        fixity[_label(rel)] = {"verified_at": time.time(), "ok": got == sha}
        if got != sha:
            find("CORRUPT", _label(rel),
                 "content changed while size and mtime did not (bit rot): run repair")
    if record:
        _save_json(fixity_path, fixity, compact=True)
    if replicas:
        from .replicas import check_replicas

        catalog = {_rel(f, n): (sha, size) for f, n, sha, size, _m in assets}
        report["replicas"] = check_replicas(cfg, catalog, download=download, dests=dests,
                                            record=record)
        findings.extend(f for r in report["replicas"] for f in r["findings"])
        if not report["replicas"]:
            find("NO_DESTINATION", "", "the library knows no backup destination "
                 "(photovfs backup LIBRARY DEST, or --dest)")
    secs = time.monotonic() - t0
    report.update(ok=not findings, files=len(assets), hashed=hashed, not_hashed=len(to_hash) - hashed,
                  bytes_read=read, seconds=round(secs, 3))
    return report


# ---- repair --------------------------------------------------------------------------------------
def _candidates(dest, rel: str) -> list[str]:
    """Where a copy of rel may be at a destination: current/, then displaced versions, newest first."""
    out = [f"current/{rel}"]
    for g in reversed(dest.list_dirs("versions")):
        out.append(f"versions/{g}/{rel}")
    return out


def fetch_verified(dest, rel: str, sha: str, target: Path) -> str | None:
    """Copy a version of rel whose sha256 is `sha` next to target, verified; return where it came from."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for cand in _candidates(dest, rel):
        tmp = target.parent / f".pvb-repair-{os.getpid()}.part"
        try:
            if not dest.get(cand, tmp):
                continue
            if sha256_file(tmp) != sha:
                continue
            fd = os.open(tmp, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, target)
            return f"{dest.url}/{cand}"
        finally:
            tmp.unlink(missing_ok=True)
    return None


def repair(library: Path, *, state_dir: Path | None = None, config_file: Path | None = None,
           dests: list[str] | None = None) -> dict:
    from ..files import fsync_dir

    cfg = load_config(Path(library), config_file=config_file, state_dir=state_dir)
    found = check(library, state_dir=state_dir, config_file=config_file)
    urls = dests or known_destinations(cfg)
    report: dict = {"command": "repair", "library": str(cfg.library), "destinations": urls,
                    "repaired": [], "unrepaired": [], "other_findings": []}
    engine, s = _sessions(cfg)
    try:
        rows = {fs_to_text(_rel(a.folder, a.filename)): (a.sha256, a.mtime_ns)
                for a in catalog_assets(s)}
    finally:
        s.close()
        engine.dispose()
    for f in found["findings"]:
        if f["kind"] not in ("CORRUPT", "MISSING"):
            report["other_findings"].append(f)
            continue
        label = f["path"]
        sha, mtime_ns = rows[label]
        rel = text_to_fs(label)
        target = cfg.library / rel
        source = None
        for url in urls:
            source = fetch_verified(open_dest(url), rel, sha, target)
            if source:
                break
        if source is None:
            report["unrepaired"].append({"path": label, "kind": f["kind"],
                                         "reason": "no copy with the catalogued sha256 in "
                                         f"{urls or 'any known destination'}; nothing changed"})
            continue
        os.utime(target, ns=(mtime_ns, mtime_ns))
        fsync_dir(target.parent)
        if sha256_file(target) != sha:  # cannot happen unless the disk is failing
            report["unrepaired"].append({"path": label, "kind": f["kind"],
                                         "reason": "repaired copy does not verify: disk failing?"})
            continue
        report["repaired"].append({"path": label, "kind": f["kind"], "from": source})
    report["ok"] = not report["unrepaired"] and not report["other_findings"]
    return report


# ---- restore -------------------------------------------------------------------------------------
def restore(dest_url: str, target: Path, *, generation: str | None = None, dry_run: bool = False,
            from_files: bool = False, only: str | None = None) -> dict:
    """Rebuild a library in an empty TARGET from a finished generation (or, with `only`, just the
    photos at a virtual path: see subset.py); then check it. Nothing is written when the
    generation, the target or `only` is not usable."""
    dest = open_dest(dest_url)
    gens = done_generations(dest)
    report: dict = {"command": "restore", "dest": dest.url, "target": str(target), "ok": False,
                    "restored": 0, "problems": [], "dry_run": dry_run}
    if not gens:
        report["problems"].append("no finished generation at the destination")
        return report
    gen = generation or gens[-1]
    if gen not in gens:
        report["problems"].append(f"generation {gen} is not a finished generation: {gens}")
        return report
    report["generation"] = gen
    if target.exists() and any(target.iterdir()):
        report["problems"].append(f"{target} is not empty")
        return report
    entries = read_manifest(dest, gen)
    raw = dest.read_bytes(f"generations/{gen}/metadata.json")
    meta = json.loads(raw) if raw else {}
    with tempfile.TemporaryDirectory(prefix="photovfs-restore-") as td:
        snap = Path(td) / "catalog.db"
        snapshot = None if from_files or not dest.get(f"generations/{gen}/catalog.db", snap) \
            else snap
        if only is not None:
            try:
                entries = _only_entries(entries, meta, only, snapshot)
            except PhotoVFSError as exc:
                report["problems"].append(f"--only {only}: {exc.reason}")
                return report
            report["only"] = only
        report["files"] = len(entries)
        if dry_run:
            present = dest.list_files("current")
            report["would_restore"] = [
                {"path": _label(e.path), "size": e.size,
                 "from": "current" if present.get(e.path) == e.size else "versions"}
                for e in sorted(entries.values(), key=lambda e: e.path)]
            report["ok"] = True
            return report
        target.mkdir(parents=True, exist_ok=True)
        _restore_files(dest, gen, entries, target, report)
        state = target / ".photovfs"
        state.mkdir(exist_ok=True)
        if snapshot is None and not from_files:
            if dest.get(f"generations/{gen}/catalog.pgdump", state / "catalog.pgdump"):
                report["notes"] = ["the generation's catalog is a PostgreSQL dump: it is at "
                                   f"{state / 'catalog.pgdump'} (pg_restore it into your server); "
                                   "this library was rebuilt from the files (--from-files)"]
                from_files = True
            else:
                report["problems"].append("the generation has no catalog snapshot: use "
                                          "--from-files")
        if from_files:
            if only is not None:
                meta = _meta_subset(meta, {_label(p) for p in entries})
            report["metadata"] = _reapply_metadata(meta, target)
        elif snapshot is not None:
            shutil.copyfile(snapshot, state / "catalog.db")
            if only is not None:
                report["catalog"] = prune_catalog(state / "catalog.db", set(entries))
            elif meta.get("trash_root"):
                report["trash_items"] = _relocate_trash(state / "catalog.db", meta["trash_root"],
                                                        state / "trash")
    chk = check(target)
    report["check"] = {"ok": chk["ok"], "findings": chk["findings"]}
    report["ok"] = not report["problems"] and chk["ok"]
    return report


def _only_entries(entries: dict[str, Entry], meta: dict, only: str,
                  snapshot: Path | None) -> dict[str, Entry]:
    """The manifest entries a virtual path means, with stack companions and sidecars."""
    if snapshot is not None:
        chosen = select_from_catalog(snapshot, only)
    else:
        originals = [_label(p) for p in entries if is_original(p)]
        chosen = {text_to_fs(p) for p in select_from_files(originals, meta, only)}
    keep = with_sidecars({p for p in chosen if p in entries}, entries)
    if not any(is_original(p) for p in keep):
        raise NotFound(f"{only} holds no photos in this generation")
    return {p: entries[p] for p in sorted(keep)}


def _meta_subset(meta: dict, kept: set[str]) -> dict:
    """metadata.json narrowed to the restored photos: groups without a member are left out."""
    out = dict(meta)
    for key in ("people", "albums", "keywords", "places"):
        items = [dict(it, members=[m for m in it.get("members", []) if m in kept])
                 for it in meta.get(key, [])]
        out[key] = [it for it in items if it["members"]]
    out["stacks"] = [s for s in meta.get("stacks", []) if kept.issuperset(s)]
    return out


def _restore_files(dest, gen: str, entries: dict[str, Entry], target: Path, report: dict) -> None:
    """Copy each entry from current/ or a later generation's versions/, verified (the bytes hashed
    are the bytes written) and with its recorded mtime; name each one that has no good copy.
    Several files at a time from a local folder."""
    later = [g for g in dest.list_dirs("versions") if g > gen]
    for folder in sorted({os.path.dirname(e.path) for e in entries.values()}):
        (target / folder).mkdir(parents=True, exist_ok=True)

    def one(e: Entry) -> str | None:
        dst = target / e.path
        tmp = dst.parent / f".pvb-restore-{secrets.token_hex(6)}.part"
        try:
            for cand in [f"current/{e.path}"] + [f"versions/{g}/{e.path}" for g in later]:
                if dest.get_hashed(cand, tmp) == e.sha256:
                    os.utime(tmp, ns=(e.mtime_ns, e.mtime_ns))
                    os.replace(tmp, dst)
                    return cand
            return None
        finally:
            tmp.unlink(missing_ok=True)

    items = list(entries.values())
    if dest.parallel and len(items) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
            got = list(pool.map(one, items))
    else:
        got = [one(e) for e in items]
    for e, cand in zip(items, got, strict=True):
        if cand is None:
            report["problems"].append(f"{_label(e.path)}: no copy with sha256 {e.sha256[:12]}")
        else:
            report["restored"] += 1


def _relocate_trash(db: Path, old_root: str, new_root: Path) -> int:
    """Trash items in the snapshot name their files under the old state folder: point them at the
    copies restored under TARGET/.photovfs/trash/."""
    n = 0
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT id, file FROM trash_items WHERE file IS NOT NULL").fetchall()
        for item_id, file in rows:
            try:
                sub = Path(file).relative_to(old_root)
            except ValueError:
                continue
            c.execute("UPDATE trash_items SET file = ? WHERE id = ?", (str(new_root / sub), item_id))
            n += 1
    return n


def _reapply_metadata(meta: dict, target: Path) -> dict:
    """Rescan restored originals and put back people, albums, keywords and stacks by path."""
    from sqlalchemy import update

    from ..catalog.store import album_by_path, person_by_name
    from ..library import Library

    lib = Library.open(target)
    counts = {"people": 0, "albums": 0, "keywords": 0, "links": 0, "stacks": 0,
              "unknown_paths": 0}
    try:
        lib.scan()
        with lib.write() as s:
            ids = {f"{a.folder}/{a.filename}".lstrip("/"): a.id
                   for a in s.execute(select(Asset.id, Asset.folder, Asset.filename))}

            def members(item):
                for p in item.get("members", []):
                    if p in ids:
                        yield ids[p]
                    else:
                        counts["unknown_paths"] += 1

            for p in meta.get("people", []):
                person = person_by_name(s, p["name"])
                assert person is not None
                person.trashed = bool(p.get("trashed"))
                counts["people"] += 1
                for aid in members(p):
                    link = select(AssetPerson.id).where(AssetPerson.asset_id == aid,
                                                        AssetPerson.person_id == person.id)
                    if s.scalar(link) is None:
                        s.add(AssetPerson(asset_id=aid, person_id=person.id, source="manual"))
                        counts["links"] += 1
            for a in meta.get("albums", []):
                album = album_by_path(s, a["path"])
                assert album is not None
                album.trashed = bool(a.get("trashed"))
                counts["albums"] += 1
                for aid in members(a):
                    if s.get(AlbumAsset, (album.id, aid)) is None:
                        s.add(AlbumAsset(album_id=album.id, asset_id=aid, added_at=datetime.now()))
                        counts["links"] += 1
            for k in meta.get("keywords", []):
                kid = s.scalar(select(Keyword.id).where(Keyword.name == k["name"]))
                if kid is None:
                    kw = Keyword(name=k["name"])
                    s.add(kw)
                    s.flush()
                    kid = kw.id
                counts["keywords"] += 1
                for aid in members(k):
                    if s.get(AssetKeyword, (aid, kid)) is None:
                        s.add(AssetKeyword(asset_id=aid, keyword_id=kid))
                        counts["links"] += 1
            for paths in meta.get("stacks", []):  # Live Photo, RAW+JPEG: one stack again
                got = list(members({"members": paths}))
                if len(got) > 1:
                    s.execute(update(Asset).where(Asset.id.in_(got)).values(stack_id=min(got)))
                    counts["stacks"] += 1
    finally:
        lib.close()
    return counts


__all__ = ["backup", "check", "repair", "restore", "RcloneDest", "LocalDest"]

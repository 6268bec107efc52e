"""`restore --only VIRTUAL/PATH`: which files of a generation a virtual path means, and a catalog
that holds just those.

From the catalog snapshot the path is resolved by the views themselves (a Library opened over a
copy of the snapshot: listings never touch the disk), so `by-date/2021/04/30` means exactly what
it means when serving. From the files alone (`--from-files`) only what the manifest and
metadata.json record can be computed: `originals/...` (the paths), `by-album/...` and
`by-person/...` (their member paths); the capture date and place are not in them.

A selection always brings the rest of each photo's stack (Live Photo video, RAW+JPEG) and its
XMP sidecars, beside the original or in the state folder: a restored photo is never half of one.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from ..errors import InvalidName, NotFound
from ..names import fs_to_text, split_path

#: views whose files are originals (thumbnails/, inbox/ and trash/ hold something else)
ORIGINAL_VIEWS = ("by-date", "by-album", "by-person", "by-place", "originals")
FROM_FILES_VIEWS = ("originals", "by-album", "by-person")
STATE_SIDECARS = ".photovfs/sidecars/"


def parse_only(only: str) -> tuple[str, ...]:
    """The components of an --only path; InvalidName for an absolute path, `..`, `.` or a path
    outside the views that hold originals (a restore writes below TARGET only, whatever it is
    given)."""
    if not only or only.startswith(("/", "\\", "~")) or (len(only) > 1 and only[1] == ":"):
        raise InvalidName(f"--only takes a virtual path such as by-album/Trip, not {only!r}")
    raw = [p for p in only.split("/") if p]
    if any(p in (".", "..") for p in raw):
        raise InvalidName(f"--only may not contain '.' or '..': {only!r}")
    parts = split_path(only)  # NUL, control characters, backslashes, too long
    if not parts or parts[0] not in ORIGINAL_VIEWS:
        raise InvalidName(f"--only must start with one of {', '.join(ORIGINAL_VIEWS)}: {only!r}")
    return parts


def _collect(lib, path: str, out: set[int]) -> None:
    """Asset ids of every photo at or below a virtual path (folders recursively)."""
    node = lib.resolve(path)
    if node.kind == "scratch":  # an album's placeholder answer for a name that is not there
        raise NotFound()
    if not node.is_dir:
        if node.asset_id is None:
            raise NotFound()
        out.add(node.asset_id)
        return
    for child in lib.list(path):
        if child.is_dir:
            _collect(lib, child.path, out)
        elif child.kind == "asset" and child.asset_id is not None:
            out.add(child.asset_id)


def select_from_catalog(snapshot: Path, only: str) -> set[str]:
    """Manifest paths of the photos at `only`, resolved by the views over a copy of the snapshot;
    NotFound when it names nothing."""
    from ..library import Library

    parts = parse_only(only)
    with tempfile.TemporaryDirectory(prefix="photovfs-only-") as td:
        state = Path(td) / "state"
        state.mkdir()
        with sqlite3.connect(snapshot) as a, sqlite3.connect(state / "catalog.db") as b:
            a.backup(b)
        lib = Library.open(Path(td) / "root", state_dir=state)
        try:
            ids: set[int] = set()
            _collect(lib, "/".join(parts), ids)
        finally:
            lib.close()
    if not ids:
        raise NotFound(f"{only} holds no photos in this generation")
    return paths_of(snapshot, ids)


def paths_of(db: Path, ids: set[int]) -> set[str]:
    """Manifest paths (os form) of assets, with every member of their stacks."""
    from ..names import text_to_fs

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT id, folder, filename, stack_id FROM assets "
                         "WHERE status != 'trashed'").fetchall()
    stacks = {r[3] for r in rows if r[0] in ids and r[3] is not None}
    return {text_to_fs(f"{r[1]}/{r[2]}" if r[1] else r[2]) for r in rows
            if r[0] in ids or (r[3] is not None and r[3] in stacks)}


def select_from_files(labels: list[str], meta: dict, only: str) -> set[str]:
    """Member labels (text paths) of `only`, computed from the manifest and metadata.json."""
    parts = parse_only(only)
    view, rest = parts[0], "/".join(parts[1:])
    if view not in FROM_FILES_VIEWS:
        raise InvalidName(f"{view}/ is computed from the catalog (capture dates and places are not "
                          "in the manifest): restore from the catalog snapshot, without --from-files")
    if view == "originals":
        got = {p for p in labels if not rest or p == rest or p.startswith(rest + "/")}
    else:
        groups = [(a["path"], a["members"]) for a in meta.get("albums", [])] if view == "by-album" \
            else [(p["name"], p["members"]) for p in meta.get("people", [])]
        got = {m for name, members in groups
               if not rest or name == rest or name.startswith(rest + "/") for m in members}
        if not got and "/" in rest:  # a single photo: the album or person, then a file name
            folder, _, filename = rest.rpartition("/")
            got = {m for name, members in groups if name == folder for m in members
                   if m.rpartition("/")[2] == filename}
    if not got:
        raise NotFound(f"{only} holds no photos in this generation")
    for stack in meta.get("stacks", []):
        if got.intersection(stack):
            got.update(stack)
    return got


def with_sidecars(chosen: set[str], manifest_paths) -> set[str]:
    """`chosen` (os-form paths of originals) plus the XMP sidecars of each in the manifest:
    `IMG_1.jpg.xmp` and `IMG_1.xmp` beside it, and the state folder's copy."""
    wanted: set[str] = set()
    for rel in chosen:
        stem = rel.rpartition(".")[0] or rel
        for base in (rel, stem, STATE_SIDECARS + rel):
            wanted.add(base.lower() + ".xmp")
    out = set(chosen)
    for p in manifest_paths:
        if p.lower().endswith(".xmp") and p.lower() in wanted:
            out.add(p)
    return out


def prune_catalog(db: Path, keep: set[str]) -> dict:
    """Reduce a restored snapshot to the assets at `keep` (os-form paths): their rows, the albums,
    people, keywords, places and folders they use; no trash (its files are not restored)."""
    from ..names import text_to_fs

    with sqlite3.connect(db) as c:
        c.execute("PRAGMA foreign_keys=ON")
        rows = c.execute("SELECT id, folder, filename FROM assets").fetchall()
        drop = [r[0] for r in rows if text_to_fs(f"{r[1]}/{r[2]}" if r[1] else r[2]) not in keep]
        c.executemany("DELETE FROM assets WHERE id = ?", [(i,) for i in drop])
        c.execute("DELETE FROM trash_items")
        c.execute("DELETE FROM people WHERE id NOT IN (SELECT person_id FROM asset_people)")
        c.execute("DELETE FROM keywords WHERE id NOT IN (SELECT keyword_id FROM asset_keywords)")
        c.execute("DELETE FROM places WHERE id NOT IN "
                  "(SELECT place_id FROM assets WHERE place_id IS NOT NULL)")
        used = {r[0] for r in c.execute(
            "SELECT DISTINCT a.path FROM albums a JOIN album_assets m ON m.album_id = a.id")}
        groups = {"/".join(p.split("/")[:i]) for p in used for i in range(1, p.count("/") + 1)}
        albums = c.execute("SELECT id, path FROM albums").fetchall()
        c.executemany("DELETE FROM albums WHERE id = ?",
                      [(i,) for i, p in albums if p not in used and p not in groups])
        folders = {r[0] for r in c.execute("SELECT DISTINCT folder FROM assets")}
        needed = {"/".join(f.split("/")[:i]) for f in folders for i in range(1, f.count("/") + 2)}
        c.executemany("DELETE FROM folders WHERE path = ?",
                      [(p,) for (p,) in c.execute("SELECT path FROM folders").fetchall()
                       if p not in needed])
        left = c.execute("SELECT count(*) FROM assets").fetchone()[0]
    return {"assets": left, "dropped": len(drop)}


def labels(paths: set[str]) -> set[str]:
    return {fs_to_text(p) for p in paths}

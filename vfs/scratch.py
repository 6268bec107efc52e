"""Per-folder scratch area for side files: Finder's `._*` and `.DS_Store`, Windows' `desktop.ini`,
editors' safe-save temporaries.

They must work (a client that cannot write them refuses to mount read-write or to save), but they are
never catalogued, never shown as photos and never ingested. Each virtual folder gets a private real
folder under STATE/scratch, named by a hash of the virtual path.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import NotFound
from .files import fsync_dir
from .node import Node


class Scratch:
    def __init__(self, root: Path) -> None:
        self.root = root

    def dir_for(self, folder: str) -> Path:
        digest = hashlib.sha1(folder.encode("utf-8")).hexdigest()
        return self.root / digest[:2] / digest

    def path(self, folder: str, name: str) -> Path:
        return self.dir_for(folder) / name

    def node(self, folder: str, name: str) -> Node:
        path = self.path(folder, name)
        try:
            st = path.stat()
        except OSError:
            raise NotFound() from None
        vpath = f"{folder}/{name}" if folder else name
        return Node(path=vpath, name=name, is_dir=False, kind="scratch", size=st.st_size,
                    mtime=st.st_mtime, content_type="application/octet-stream",
                    etag=f"s-{st.st_size:x}-{st.st_mtime_ns:x}", source=path, writable=True)

    def list(self, folder: str) -> list[Node]:
        d = self.dir_for(folder)
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return []
        return [self.node(folder, n) for n in names]

    def put(self, folder: str, name: str, tmp: Path) -> Node:
        d = self.dir_for(folder)
        d.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, d / name)
        fsync_dir(d)
        return self.node(folder, name)

    def remove(self, folder: str, name: str) -> None:
        try:
            self.path(folder, name).unlink()
        except FileNotFoundError:
            raise NotFound() from None

    def rename(self, folder: str, name: str, new_folder: str, new_name: str) -> Node:
        d = self.dir_for(new_folder)
        d.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self.path(folder, name), d / new_name)
        except FileNotFoundError:
            raise NotFound() from None
        return self.node(new_folder, new_name)

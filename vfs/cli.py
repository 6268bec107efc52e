"""photovfs command line: scan | serve | mount | unmount | ls | ingest | status | trash | thumbs | user.

argparse from the standard library; progress bars with tqdm on a terminal only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import PhotoVFSError


def _library_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("library", type=Path, help="the folder of photos (never modified by scan)")
    p.add_argument("--config", type=Path, default=None, help="TOML config file")
    p.add_argument("--state", type=Path, default=None,
                   help="state folder (catalog, caches, trash); default LIBRARY/.photovfs")


def _open(args: argparse.Namespace):
    from .library import Library

    if not args.library.is_dir():
        raise SystemExit(f"photovfs: {args.library} is not a folder")
    return Library.open(args.library, config_file=args.config, state_dir=args.state)


def cmd_scan(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    lib = _open(args)
    bar = tqdm(unit=" files", disable=not sys.stderr.isatty() or args.json, desc="scanning")
    report = lib.scan(progress=bar.update)
    bar.close()
    lib.close()
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
        return 0
    print(f"seen {report.seen}: {report.added} added, {report.updated} updated, "
          f"{report.moved} moved, {report.removed} removed, {report.unchanged} unchanged")
    for line in report.corrupt:
        print(f"  corrupt: {line}")
    for line in report.errors:
        print(f"  error: {line}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    lib = _open(args)
    try:
        node = lib.resolve(args.path)
        nodes = lib.list(args.path) if node.is_dir else [node]
    finally:
        lib.close()
    if args.json:
        print(json.dumps([{"name": n.name, "dir": n.is_dir, "size": n.size, "path": n.path,
                           "type": n.content_type} for n in nodes], indent=2))
    else:
        for n in nodes:
            print(f"{n.name}/" if n.is_dir else f"{n.size:>12}  {n.name}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from .ingest.cli import run_ingest

    return run_ingest(_open(args), args.paths, json_out=args.json, workers=args.workers,
                      watch=args.watch)


def cmd_status(args: argparse.Namespace) -> int:
    from .backup.status import backup_status, print_backup_status
    from .ingest.cli import print_status

    lib = _open(args)
    backups = backup_status(lib.config)  # per destination: generation age, last replica check
    if not args.json:
        code = print_status(lib)
        print_backup_status(backups)
        return code
    return print_status(lib, json_out=True, extra={"backup": backups})


def cmd_serve(args: argparse.Namespace) -> int:
    from .dav.server import serve

    return serve(_open(args), host=args.host, port=args.port, cert=args.cert, key=args.key,
                 scan=not args.no_scan)


def cmd_mount(args: argparse.Namespace) -> int:
    from .fuse.mount import mount

    return mount(_open(args), args.mountpoint, allow_other=args.allow_other,
                 foreground=True, scan=not args.no_scan)


def cmd_unmount(args: argparse.Namespace) -> int:
    from .fuse.mount import unmount

    return unmount(args.mountpoint)


def cmd_trash(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from .catalog.models import TrashItem

    lib = _open(args)
    with lib.session() as s:
        items = s.scalars(select(TrashItem).order_by(TrashItem.deleted_at)).all()
    if args.action == "list":
        for i in items:
            print(f"{i.id:>6}  {i.deleted_at:%Y-%m-%d %H:%M}  {i.kind:<8} {i.name}")
    elif args.action == "restore":
        wanted = {x for x in args.items}
        for i in items:
            if str(i.id) in wanted or i.name in wanted:
                node = lib.restore(i.id, _admin())
                print(f"restored {i.name} -> {node.path}")
    elif args.action == "empty":
        for i in items:
            lib.purge(i.id, _admin())
        print(f"purged {len(items)} items")
    lib.close()
    return 0


def cmd_export_metadata(args: argparse.Namespace) -> int:
    lib = _open(args)
    written = lib.sidecars.export_all()
    lib.close()
    print(f"wrote {written} sidecars")
    return 0


def _admin():
    from .roles import SYSTEM

    return SYSTEM


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photovfs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scan", help="index a library in place (incremental)")
    _library_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("ls", help="list a virtual folder")
    _library_args(p)
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("serve", help="serve the library over WebDAV")
    _library_args(p)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--cert", type=Path, default=None)
    p.add_argument("--key", type=Path, default=None)
    p.add_argument("--no-scan", action="store_true", help="do not index on start")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mount", help="mount the library with FUSE")
    _library_args(p)
    p.add_argument("mountpoint", type=Path)
    p.add_argument("--allow-other", action="store_true")
    p.add_argument("--no-scan", action="store_true")
    p.set_defaults(func=cmd_mount)

    p = sub.add_parser("unmount", help="unmount a FUSE mount")
    p.add_argument("mountpoint", type=Path)
    p.set_defaults(func=cmd_unmount)

    p = sub.add_parser("samba-config", help="print a Samba share re-exporting a FUSE mount")
    p.add_argument("library", type=Path)
    p.add_argument("mountpoint", type=Path)
    p.add_argument("--name", default="photos", help="share name (default: photos)")
    p.add_argument("--user", default=None, help="force user (default: you, the mount's owner)")
    p.add_argument("--guest", action="store_true", help="allow guest access (guest ok = yes)")
    p.add_argument("--read-only", action="store_true", help="a read-only share")
    p.set_defaults(func=lambda a: __import__("photovfs.fuse.smb", fromlist=["x"]).cmd_samba_config(a))

    p = sub.add_parser("ingest", help="file photos into the library as the inbox would")
    _library_args(p)
    p.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the inbox)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--workers", type=int, default=2, help="files verified in parallel")
    p.add_argument("--watch", action="store_true", help="then keep watching the inbox")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("faces", help="detect faces and group them into people (by-person/)")
    _library_args(p)
    p.add_argument("--workers", type=int, default=1, help="detector processes")
    p.add_argument("--threshold", type=float, default=None, help="face distance (default 0.5)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: __import__("photovfs.people.cli", fromlist=["run"]).run(
        _open(a), workers=a.workers, threshold=a.threshold, json_out=a.json))

    p = sub.add_parser("status", help="the inbox queue, background work, backup "
                       "generations and the last replica check")
    _library_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("export-metadata",
                       help="write people, albums and keywords of every photo to XMP sidecars")
    _library_args(p)
    p.set_defaults(func=cmd_export_metadata)

    p = sub.add_parser("trash", help="list, restore or empty the trash")
    p.add_argument("action", choices=["list", "restore", "empty"])
    _library_args(p)
    p.add_argument("items", nargs="*", help="trash item ids or names to restore")
    p.set_defaults(func=cmd_trash)

    from .users import cmd_user

    p = sub.add_parser("user", help="add, remove or list the users of `serve` (WebDAV)")
    p.add_argument("action", choices=["add", "remove", "list"])
    _library_args(p)
    p.add_argument("name", nargs="?", help="user name (add, remove)")
    p.add_argument("--role", default="member", choices=["admin", "member", "viewer", "uploader"])
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin (no prompt)")
    p.add_argument("--replace", action="store_true", help="change an existing user's password/role")
    p.set_defaults(func=cmd_user)

    from .backup.cli import add_parsers as add_backup_parsers  # backup | check | repair | restore

    add_backup_parsers(sub, _library_args)

    p = sub.add_parser("thumbs", help="pre-generate renditions (thumbnails/) in parallel")
    _library_args(p)
    p.add_argument("--sizes", default=None,
                   help="comma-separated sizes in px, e.g. 256,1920 (default: thumbnails.view_size)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (default: thumbnails.workers)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_thumbs)

    # `photovfs backup add LIBRARY DEST` (main() turns `backup add` into `backup-add`)
    p = sub.add_parser("backup-add", help="register a backup destination that `serve` and `mount` "
                       "keep current (also: photovfs backup add LIBRARY DEST)")
    _library_args(p)
    p.add_argument("dest", help="a local folder or an rclone remote (remote:path)")
    p.add_argument("--schedule", default="daily", choices=["daily", "hourly", "after-ingest"])
    p.set_defaults(func=cmd_backup_add)
    return parser


def cmd_thumbs(args: argparse.Namespace) -> int:
    from .background import cmd_thumbs as run

    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()] if args.sizes else None
    except ValueError:
        raise SystemExit("photovfs: --sizes takes numbers, e.g. 256,1920") from None
    return run(_open(args), sizes, workers=args.workers, json_out=args.json)


def cmd_backup_add(args: argparse.Namespace) -> int:
    from .background import cmd_backup_add as run
    from .config import load_config

    if not args.library.is_dir():
        raise SystemExit(f"photovfs: {args.library} is not a folder")
    cfg = load_config(args.library, config_file=args.config, state_dir=args.state)
    return run(cfg.state_dir, args.dest, args.schedule)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["backup", "add"] and not Path("add").is_dir():
        argv[:2] = ["backup-add"]
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PhotoVFSError as exc:
        print(f"photovfs: {exc.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

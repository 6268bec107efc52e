"""`photovfs backup | check | repair | restore`: print a report (or --json); exit 0 only when green.

Exit codes: 0 green, 1 findings / something skipped / not repaired, 3 stopped by the mass-change guard.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _pct(text: str) -> float:
    t = text.strip()
    return float(t[:-1]) / 100 if t.endswith("%") else float(t)


def _emit(report: dict, as_json: bool, human) -> None:
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        human(report)


def _lines(title: str, items, fmt) -> None:
    for it in items:
        print(f"  {title}: {fmt(it)}")


def cmd_backup(args: argparse.Namespace) -> int:
    from .engine import backup

    if not args.library.is_dir():
        raise SystemExit(f"photovfs: {args.library} is not a folder")
    r = backup(args.library, args.dest, max_change=_pct(args.max_change), force=args.force,
               state_dir=args.state, config_file=args.config, verify_sources="none" if args.quick else "all" if args.verify_all else "due")

    def human(r: dict) -> None:
        if r["stopped"]:
            print(f"STOPPED: {r['stopped']}")
            return
        if r.get("error"):
            print(f"FAILED: {r['error']}")
        print(f"generation {r['generation']} at {r['dest']}: {len(r['copied'])} copied "
              f"({r['bytes_copied']} bytes), {r['unchanged']} unchanged "
              f"({r.get('rehashed', 0)} re-hashed), "
              f"{len(r['displaced'])} moved to versions/, {r.get('seconds')} s")
        _lines("CORRUPT (not copied)", r["corrupt"], lambda c: f"{c['path']}: {c['reason']}")
        _lines("SKIPPED", r["skipped"], lambda c: f"{c['path']}: {c['reason']}")
        _lines("COPIED BUT DAMAGED", r.get("flagged", []), lambda c: f"{c['path']}: {c['reason']}")
        _lines("STACK INCOMPLETE", r.get("broken_stacks", []),
               lambda b: f"{', '.join(b['members'])}: left out {', '.join(b['left_out'])}")
        print("OK" if r["ok"] else "NOT COMPLETE: see the files named above")

    _emit(r, args.json, human)
    if r["stopped"]:
        return 3
    return 0 if r["ok"] else 1


def cmd_check(args: argparse.Namespace) -> int:
    from .engine import check

    if not args.library.is_dir():
        raise SystemExit(f"photovfs: {args.library} is not a folder")
    r = check(args.library, budget=args.budget, state_dir=args.state, config_file=args.config,
              replicas=args.replicas or bool(args.download), download=args.download or 0,
              dests=args.dest or None)

    def human(r: dict) -> None:
        for f in r["findings"]:
            where = f" at {f['dest']}" if f.get("dest") else ""
            print(f"{f['kind']:<10} {f['path']}{where}: {f['detail']}")
        for rep in r.get("replicas", []):
            print(f"replica {rep['dest']}: generation {rep['generation'] or '-'}"
                  + (f" ({rep['age_hours']} h old)" if rep.get("age_hours") is not None else "")
                  + f", {rep['downloaded']} files downloaded and re-hashed, "
                  f"{len(rep['findings'])} findings")
        if "files" in r:
            print(f"{r['files']} catalogued, {r['hashed']} re-hashed ({r['bytes_read']} bytes), "
                  f"{r['not_hashed']} left for a later run; {len(r['findings'])} findings")
        print("OK" if r["ok"] else "FINDINGS")

    _emit(r, args.json, human)
    return 0 if r["ok"] else 1


def cmd_repair(args: argparse.Namespace) -> int:
    from .engine import repair

    if not args.library.is_dir():
        raise SystemExit(f"photovfs: {args.library} is not a folder")
    r = repair(args.library, state_dir=args.state, config_file=args.config,
               dests=args.dest or None)

    def human(r: dict) -> None:
        _lines("REPAIRED", r["repaired"], lambda c: f"{c['path']} ({c['kind']}) from {c['from']}")
        _lines("NOT REPAIRED", r["unrepaired"], lambda c: f"{c['path']} ({c['kind']}): {c['reason']}")
        _lines("NOT A REPAIR CASE", r["other_findings"], lambda c: f"{c['kind']} {c['path']}: "
               f"{c['detail']}")
        print("OK" if r["ok"] else "NOT CLEAN")

    _emit(r, args.json, human)
    return 0 if r["ok"] else 1


def cmd_restore(args: argparse.Namespace) -> int:
    from .engine import restore

    r = restore(args.dest, args.target, generation=args.generation, dry_run=args.dry_run,
                from_files=args.from_files, only=args.only)

    def human(r: dict) -> None:
        if r.get("dry_run") and "would_restore" in r:
            for w in r["would_restore"]:
                print(f"would restore {w['path']} ({w['size']} bytes, from {w['from']})")
        else:
            print(f"restored {r['restored']} of {r.get('files', 0)} files from generation "
                  f"{r.get('generation')} into {r['target']}"
                  + (f" (only {r['only']})" if r.get("only") else ""))
        for p in r["problems"]:
            print(f"  PROBLEM: {p}")
        for f in r.get("check", {}).get("findings", []):
            print(f"  check: {f['kind']} {f['path']}: {f['detail']}")
        print("OK" if r["ok"] else "NOT CLEAN")

    _emit(r, args.json, human)
    return 0 if r["ok"] else 1


def add_parsers(sub, library_args) -> None:
    """The four subcommands (called from photovfs.cli.build_parser)."""
    p = sub.add_parser("backup", help="back up originals, catalog and metadata to a folder or "
                       "rclone remote (a new generation; nothing at the destination is deleted)")
    library_args(p)
    p.add_argument("dest", help="a local folder or an rclone remote (remote:path)")
    p.add_argument("--max-change", default="20%", help="stop when more than this share of "
                   "originals was deleted or rewritten since the last generation (default 20%%)")
    p.add_argument("--force", action="store_true", help="back up even past --max-change")
    p.add_argument("--quick", action="store_true",
                   help="re-hash only the files being copied (no bit-rot check of the rest)")
    p.add_argument("--verify-all", action="store_true",
                   help="re-hash every unchanged source (default: only those not verified by "
                   "check or backup within background.fixity_days, or that failed last time)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("check", help="compare catalog and disk, re-hash originals (fixity), "
                       "check the catalog; changes nothing, exits 1 on any finding")
    library_args(p)
    p.add_argument("--budget", default=None,
                   help="re-read at most this much (10%%, 500M, 2G), oldest-verified first")
    p.add_argument("--replicas", action="store_true", help="also compare each known backup "
                   "destination's newest generation with the catalog")
    p.add_argument("--download", type=int, default=None, metavar="N",
                   help="with --replicas: fetch N files from each destination and re-hash them")
    p.add_argument("--dest", action="append", default=[],
                   help="with --replicas: the destination to check (default: those the library "
                   "was backed up to)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("repair", help="replace corrupt or missing originals with verified copies "
                       "from a backup destination")
    library_args(p)
    p.add_argument("--dest", action="append", default=[],
                   help="destination to take copies from (default: those `backup` used)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser("restore", help="rebuild a library into an empty folder from a generation")
    p.add_argument("dest", help="the backup destination (folder or remote:path)")
    p.add_argument("target", type=Path, help="an empty or new folder")
    p.add_argument("--generation", default=None, help="generation id (default: the newest)")
    p.add_argument("--dry-run", action="store_true", help="list what would be restored")
    p.add_argument("--from-files", action="store_true", help="ignore the catalog snapshot: "
                   "rescan the originals and re-apply people, albums and keywords")
    p.add_argument("--only", default=None, metavar="VIRTUAL/PATH",
                   help="restore just the photos at this path (by-album/Trip, by-date/2021/04, "
                   "originals/2021, one file), with their stacks, sidecars and catalog rows")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_restore)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)

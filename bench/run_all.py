"""Run every benchmark in bench/ (each `bench_*.py`, found by glob) with its default settings.

Run: python bench/run_all.py [--only scan,catalog] [--skip thumbs] [--list]

Benchmarks run one after another (never in parallel: they measure the machine), each in its own
process with this interpreter; their output streams through unchanged, so their tables are
printed as they finish. A summary of durations and exit codes follows. Exits non-zero when any
benchmark failed to run (a benchmark never fails on a slow number: none of them asserts times).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names (scan, catalog, ...)")
    parser.add_argument("--skip", default="", help="comma-separated names to leave out")
    parser.add_argument("--list", action="store_true", help="only print what would run")
    args = parser.parse_args()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}

    scripts = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if (only and name not in only) or name in skip:
            continue
        scripts.append((name, path))
    if not scripts:
        print("no benchmark selected", file=sys.stderr)
        return 2

    if args.list:
        for _name, path in scripts:
            print(path.name)
        return 0

    summary = []
    for _name, path in scripts:
        print(f"\n{'=' * 30} {path.name} {'=' * 30}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
        summary.append((path.name, time.perf_counter() - start, code))

    print(f"\n{'=' * 30} summary {'=' * 30}")
    for name, seconds, code in summary:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{name:<28} {seconds:8.1f} s  {status}")
    return 0 if all(code == 0 for _, _, code in summary) else 1


if __name__ == "__main__":
    sys.exit(main())

"""`photovfs faces LIBRARY [--workers N]`: detection to completion in the foreground."""

from __future__ import annotations

import json
import sys


def run(lib, *, workers: int, threshold: float | None, json_out: bool) -> int:
    from tqdm import tqdm

    from .detect import FacesUnavailable
    from .pipeline import run_faces

    def set_total(n: int) -> None:
        bar.total = n
        bar.refresh()

    bar = tqdm(unit=" photos", desc="faces", disable=json_out or not sys.stderr.isatty())
    try:
        report = run_faces(lib, workers=workers, threshold=threshold, progress=bar.update,
                           on_total=set_total)
    except FacesUnavailable as exc:
        print(f"photovfs: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        lib.close()
    if json_out:
        print(json.dumps(report.__dict__, indent=2))
        return 0
    rate = report.assets / report.seconds if report.seconds else 0.0
    g = report.groups
    print(f"scanned {report.assets} photos ({report.skipped} already done), "
          f"{report.faces} faces, {rate:.2f} photos/s")
    print(f"grouping: {g.get('joined', 0)} joined known people, {g.get('xmp', 0)} named from XMP "
          f"regions, {g.get('new_people', 0)} new unnamed people, "
          f"{g.get('ungrouped', 0)} faces not grouped yet")
    for line in report.errors:
        print(f"  error: {line}")
    return 0

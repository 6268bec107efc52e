"""Face pipeline benchmark: speed (1 and 2 workers vs bare dlib), memory, projection, quality.

    python bench/bench_faces.py [--corpus ../shared/corpus] [--json out.json]

Each pipeline run is a fresh catalog in a subprocess (so peak RSS is per run): copy the face corpus
(+ xmp/portrait.jpg), scan, then `run_faces` (render 1600 px -> decode -> HOG upsample 1 -> 5-point
landmarks -> ResNet descriptor -> catalog). "bare dlib" times the same three dlib calls on images
already decoded in memory. The quality table regroups the stored faces at each threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
DEFAULT_CORPUS = Path(os.environ.get("PHOTOVFS_CORPUS", HERE.parents[2] / "shared" / "corpus"))
THRESHOLDS = (0.40, 0.45, 0.50, 0.55, 0.60)


def make_library(corpus: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in sorted((corpus / "faces").iterdir()):
        if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
            shutil.copy2(f, dst / f.name)
    shutil.copy2(corpus / "xmp" / "portrait.jpg", dst / "portrait.jpg")
    return dst


def child_pipeline(root: Path, workers: int) -> dict:
    from photovfs.library import Library
    from photovfs.people.pipeline import run_faces

    lib = Library.open(root)
    lib.scan()
    t = time.perf_counter()
    report = run_faces(lib, workers=workers)
    wall = time.perf_counter() - t
    lib.close()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"workers": workers, "photos": report.assets, "faces": report.faces, "seconds": wall,
            "photos_per_s": report.assets / wall,
            "peak_rss_mb_per_worker": own if workers <= 1 else kids,
            "peak_rss_mb_parent": own}


def child_bare(root: Path) -> dict:
    from photovfs.people.detect import Detector, load_rendition

    det = Detector()
    arrays = [load_rendition(f, "image", max_pixels=120_000_000)
              for f in sorted(root.iterdir()) if f.is_file()]
    t = time.perf_counter()
    faces = sum(len(det.faces_in_array(a)) for a in arrays)
    wall = time.perf_counter() - t
    return {"photos": len(arrays), "faces": faces, "seconds": wall,
            "photos_per_s": len(arrays) / wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def quality(root: Path, corpus: Path) -> list[dict]:
    from photovfs.catalog.models import AssetPerson, Person
    from photovfs.library import Library
    from photovfs.people.group import group
    from photovfs.people.models import Face
    from photovfs.people.quality import bcubed, folders_of, mixed_folders, read_labels
    from sqlalchemy import delete, update

    labels = read_labels(corpus / "faces" / "LABELS.tsv")
    lib = Library.open(root)
    rows = []
    for th in THRESHOLDS:
        with lib.write() as s:
            s.execute(update(Face).values(person_id=None))
            s.execute(delete(AssetPerson).where(AssetPerson.source == "face"))
            s.execute(delete(Person).where(Person.name.is_(None)))
        stats = group(lib, threshold=th)
        folders = folders_of(lib)
        p, r = bcubed(folders, labels)
        rows.append({"threshold": th, "precision": round(p, 3), "recall": round(r, 3),
                     "folders": len(folders), "mixed_folders": mixed_folders(folders, labels),
                     "new_people": stats["new_people"], "ungrouped_faces": stats["ungrouped"]})
    lib.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", choices=["pipeline", "bare", "quality"], default=None)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if args.child == "pipeline":
        print(json.dumps(child_pipeline(args.root, args.workers)))
        return 0
    if args.child == "bare":
        print(json.dumps(child_bare(args.root)))
        return 0
    if args.child == "quality":
        print(json.dumps(quality(args.root, args.corpus)))
        return 0

    def child(*extra: str) -> dict | list:
        out = subprocess.run([sys.executable, str(HERE), "--corpus", str(args.corpus), *extra],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    results: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for workers in (1, 2):
            root = make_library(args.corpus, Path(tmp) / f"w{workers}")
            runs.append(child("--child", "pipeline", "--root", str(root),
                              "--workers", str(workers)))
        results["pipeline"] = runs
        results["bare_dlib"] = child("--child", "bare", "--root", str(Path(tmp) / "w1"))
        results["quality"] = child("--child", "quality", "--root", str(Path(tmp) / "w1"))
    best = runs[-1]["photos_per_s"]
    results["projected_10k_photos_2_cores_h"] = round(10_000 / best / 3600, 2)
    results["load_after"] = os.getloadavg()

    print(f"{'run':<22}{'photos':>7}{'faces':>7}{'s':>8}{'photos/s':>10}{'peak MB/worker':>16}")
    for r in runs:
        print(f"pipeline {r['workers']} worker(s)".ljust(22) + f"{r['photos']:>7}{r['faces']:>7}"
              f"{r['seconds']:>8.1f}{r['photos_per_s']:>10.2f}{r['peak_rss_mb_per_worker']:>16.0f}")
    b = results["bare_dlib"]
    print("bare dlib (decoded)".ljust(22) + f"{b['photos']:>7}{b['faces']:>7}{b['seconds']:>8.1f}"
          f"{b['photos_per_s']:>10.2f}{b['peak_rss_mb']:>16.0f}")
    print(f"projected 10,000 photos on 2 cores: {results['projected_10k_photos_2_cores_h']} h "
          f"(load average {results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} "
          f"after, {results['cpus']} CPUs)")
    print(f"\n{'threshold':>9}{'P':>7}{'R':>7}{'folders':>9}{'mixed':>7}")
    for q in results["quality"]:
        print(f"{q['threshold']:>9.2f}{q['precision']:>7.3f}{q['recall']:>7.3f}{q['folders']:>9}"
              f"{len(q['mixed_folders']):>7}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

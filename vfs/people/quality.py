"""Quality of by-person/ against a labelled corpus (LABELS.tsv: file, people, faces, ...).

Items are (file, labelled person) pairs of the single-person-labelled rows ('*group*' rows are not
per-person labels). An item's predicted cluster is the by-person folder holding the file that best
matches its person (most files labelled with that person); a file in no folder is a singleton.
B-cubed precision/recall are averaged over items.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path


def read_labels(tsv: Path) -> dict[str, set[str]]:
    with open(tsv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {r["file"]: set(r["people"].split(";")) for r in rows
            if r["people"] and not r["people"].startswith("*")}


def bcubed(folders: dict[str, set[str]], labels: dict[str, set[str]]) -> tuple[float, float]:
    """(precision, recall) of `folders` (folder name -> file names) against `labels`."""
    items = [(f, p) for f, people in labels.items() for p in sorted(people)]
    cluster_of: dict[tuple[str, str], str] = {}
    for f, p in items:
        best, score = None, 0
        for name, files in sorted(folders.items()):
            if f in files:
                s = sum(1 for g in files if p in labels.get(g, ()))
                if s > score:
                    best, score = name, s
        cluster_of[(f, p)] = best if best is not None else f"\0single {f} {p}"
    members: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for item, c in cluster_of.items():
        members[c].add(item)
    precision = recall = 0.0
    for item in items:
        cluster = members[cluster_of[item]]
        same = {i for i in items if i[1] == item[1]}
        both = len(cluster & same)
        precision += both / len(cluster)
        recall += both / len(same)
    return precision / len(items), recall / len(items)


def mixed_folders(folders: dict[str, set[str]], labels: dict[str, set[str]]) -> list[str]:
    """Folders whose labelled files share no person (two labelled people in one folder)."""
    bad = []
    for name, files in folders.items():
        sets = [labels[f] for f in files if f in labels]
        if sets and not set.intersection(*sets):
            bad.append(name)
    return bad


def folders_of(lib) -> dict[str, set[str]]:
    """by-person folder -> original file names in it (the `_largest` index excluded)."""
    from ..views.by_person import LARGEST

    out = {}
    for node in lib.list("by-person"):
        if node.name != LARGEST:
            out[node.name] = {n.source.name for n in lib.list(f"by-person/{node.name}")}
    return out

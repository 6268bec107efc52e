"""Group faces into people.

Rules, in order, on every run (idempotent):
1. A face keeps its person. Faces whose person was merged away by a rename get it back from their
   AssetPerson(source='face') link (same asset, same region). A face whose photo was rejected for its
   person ("this is not P") leaves that person for good.
2. An ungrouped face overlapping (IoU > 0.3) a named XMP region of its photo takes that name; the
   only face of a photo whose XMP names exactly one person, without any region, takes that name.
3. An ungrouped face joins the person (named or not, not trashed) of its nearest grouped face when
   that is closer than the threshold, unless the photo was rejected for that person or the person
   already has another face in the same photo.
4. The faces still ungrouped are clustered (dlib chinese whispers, same threshold); a cluster of at
   least `[people] min_faces` faces becomes a new unnamed person. Smaller clusters stay ungrouped
   and are clustered again, with newer faces, on the next run.
Named people are never renamed or merged here; people are only ever created, never deleted.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from ..catalog.models import AssetPerson, Person
from .detect import iou
from .models import Face

if TYPE_CHECKING:
    from ..library import Library

#: Euclidean distance between dlib descriptors below which two faces are the same person.
#: Measured on the corpus (bench/bench_faces.py): 0.5 gives B-cubed P/R 1.00/0.98; 0.55 merges two.
DEFAULT_THRESHOLD = 0.5
XMP_IOU = 0.3


def _key(asset_id: int, x: float | None, y: float | None, w: float | None,
         h: float | None) -> tuple:
    return (asset_id, *(round(v, 5) if v is not None else None for v in (x, y, w, h)))


def group(lib: Library, *, threshold: float = DEFAULT_THRESHOLD) -> dict:
    import numpy as np

    min_faces = max(1, lib.config.people.min_faces)
    stats = {"joined": 0, "xmp": 0, "new_people": 0, "ungrouped": 0}
    with lib.write() as s:
        faces = s.scalars(select(Face).order_by(Face.id)).all()
        people = {p.id: p for p in s.scalars(select(Person))}
        links = s.scalars(select(AssetPerson)).all()
        rejected = {(link.asset_id, link.person_id) for link in links if link.rejected}
        face_links = {_key(link.asset_id, link.x, link.y, link.w, link.h): link.person_id
                      for link in links if link.source == "face" and not link.rejected
                      and link.w is not None}
        xmp_regions: dict[int, list[AssetPerson]] = defaultdict(list)
        xmp_bare: dict[int, list[AssetPerson]] = defaultdict(list)  # named in XMP without a region
        for link in links:
            p = people.get(link.person_id)
            if (link.source == "xmp" and not link.rejected and p is not None
                    and p.name and not p.trashed):
                (xmp_regions if link.w else xmp_bare)[link.asset_id].append(link)
        faces_per_asset: dict[int, int] = defaultdict(int)
        for f in faces:
            faces_per_asset[f.asset_id] += 1

        # 1. reconcile
        for f in faces:
            if f.person_id is None:
                f.person_id = face_links.get(_key(f.asset_id, f.x, f.y, f.w, f.h))
            if f.person_id is not None and (f.asset_id, f.person_id) in rejected:
                f.person_id = None
        # 2. named XMP regions
        for f in faces:
            if f.person_id is not None:
                continue
            overlaps = sorted(((iou((f.x, f.y, f.w, f.h), (ln.x, ln.y, ln.w, ln.h)), ln.id, ln)
                               for ln in xmp_regions.get(f.asset_id, [])),
                              key=lambda t: (t[0], -t[1]))
            best = overlaps[-1][2] if overlaps else None
            if best is not None and overlaps[-1][0] > XMP_IOU:
                f.person_id = best.person_id
                stats["xmp"] += 1
            elif (faces_per_asset[f.asset_id] == 1 and len(xmp_bare[f.asset_id]) == 1
                  and not xmp_regions.get(f.asset_id)):
                f.person_id = xmp_bare[f.asset_id][0].person_id
                stats["xmp"] += 1

        def live(pid):
            return pid is not None and pid in people and not people[pid].trashed

        # 3. nearest grouped face
        grouped = [f for f in faces if live(f.person_id)]
        loose = [f for f in faces if f.person_id is None]
        owned = {(f.asset_id, f.person_id) for f in faces if f.person_id is not None}
        if grouped and loose:
            mat = np.stack([np.frombuffer(f.descriptor, dtype="<f4") for f in grouped])
            owner = [f.person_id for f in grouped]
            for f in loose:
                d = np.linalg.norm(mat - np.frombuffer(f.descriptor, dtype="<f4"), axis=1)
                for i in np.argsort(d):
                    if d[i] >= threshold:
                        break
                    pid = owner[i]
                    if (f.asset_id, pid) in rejected or (f.asset_id, pid) in owned:
                        continue
                    f.person_id = pid
                    owned.add((f.asset_id, pid))
                    stats["joined"] += 1
                    break
        # 4. cluster the rest
        loose = [f for f in faces if f.person_id is None]
        if loose:
            import dlib

            vecs = [dlib.vector(np.frombuffer(f.descriptor, dtype="<f4").astype(float).tolist())
                    for f in loose]
            labels = dlib.chinese_whispers_clustering(vecs, threshold) if len(vecs) > 1 else [0]
            clusters: dict[int, list[Face]] = defaultdict(list)
            for f, label in zip(loose, labels, strict=True):
                clusters[label].append(f)
            for members in sorted(clusters.values(), key=lambda m: min(f.id for f in m)):
                if len({f.asset_id for f in members}) < min_faces:
                    stats["ungrouped"] += len(members)
                    continue
                person = Person(name=None, name_key=None, trashed=False,
                                created_at=datetime.now())
                s.add(person)
                s.flush()
                people[person.id] = person
                seen = set()
                for f in members:
                    if f.asset_id in seen:  # two faces of one photo are two people
                        stats["ungrouped"] += 1
                        continue
                    seen.add(f.asset_id)
                    f.person_id = person.id
                stats["new_people"] += 1
        # links: one AssetPerson per (photo, person); face links follow the faces
        existing = {(link.asset_id, link.person_id) for link in links}
        wanted: dict[tuple[int, int], Face] = {}
        for f in faces:
            if f.person_id is not None and live(f.person_id):
                wanted.setdefault((f.asset_id, f.person_id), f)
        for (asset_id, pid), f in wanted.items():
            if (asset_id, pid) not in existing:
                s.add(AssetPerson(asset_id=asset_id, person_id=pid, source="face",
                                  x=f.x, y=f.y, w=f.w, h=f.h))
        have = {(f.asset_id, f.person_id) for f in faces if f.person_id is not None}
        for link in links:
            if (link.source == "face" and not link.rejected
                    and (link.asset_id, link.person_id) not in have):
                s.execute(delete(AssetPerson).where(AssetPerson.id == link.id))
    return stats

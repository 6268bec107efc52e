"""Face detection and grouping over ../shared/corpus/faces: quality, Solvay, Curie, rotation, rules.

Needs the `faces` extra (dlib-bin, face-recognition-models) and the corpus; skipped with the reason
otherwise. The corpus pipeline runs once per module (about 40 s of CPU at 1600 px renditions).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from photovfs.library import Library
from PIL import Image
from sqlalchemy import select

pytest.importorskip("dlib", reason="face detection needs the `faces` extra (pip install dlib-bin)")
pytest.importorskip("numpy", reason="face detection needs numpy")

from photovfs.people.detect import Detector, iou, load_rendition, model_dir  # noqa: E402
from photovfs.people.models import Face, FaceScan  # noqa: E402
from photovfs.people.pipeline import run_faces  # noqa: E402
from photovfs.people.quality import bcubed, folders_of, mixed_folders, read_labels  # noqa: E402

CORPUS = Path(os.environ.get("PHOTOVFS_CORPUS",
                             Path(__file__).resolve().parents[2] / "shared" / "corpus"))
FACES = CORPUS / "faces"
PORTRAIT = CORPUS / "xmp" / "portrait.jpg"
PHOTOVFS = Path(sys.executable).with_name("photovfs")

needs_corpus = pytest.mark.skipif(not (FACES / "LABELS.tsv").exists(),
                                  reason=f"face corpus not found at {FACES} (set PHOTOVFS_CORPUS)")
try:
    model_dir()
    HAVE_MODELS = (model_dir() / "dlib_face_recognition_resnet_model_v1.dat").exists()
except Exception:
    HAVE_MODELS = False
needs_models = pytest.mark.skipif(not HAVE_MODELS, reason="face-recognition-models not installed")
pytestmark = [needs_models]


def _copy_corpus(dst: Path, names: list[str] | None = None) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(FACES.iterdir()):
        if f.suffix.lower() in (".jpg", ".jpeg", ".png") and (names is None or f.name in names):
            shutil.copy2(f, dst / f.name)
    return dst


@pytest.fixture(scope="module")
def corpus_lib(tmp_path_factory):
    if not (FACES / "LABELS.tsv").exists():
        pytest.skip(f"face corpus not found at {FACES} (set PHOTOVFS_CORPUS)")
    root = _copy_corpus(tmp_path_factory.mktemp("faces") / "lib")
    shutil.copy2(PORTRAIT, root / "portrait.jpg")
    lib = Library.open(root)
    lib.scan()
    report = run_faces(lib, workers=1)
    yield lib, report
    lib.close()


@needs_corpus
@pytest.mark.slow
def test_bcubed_quality_of_person_folders(corpus_lib):
    lib, _ = corpus_lib
    labels = read_labels(FACES / "LABELS.tsv")
    folders = folders_of(lib)
    precision, recall = bcubed(folders, labels)
    assert precision >= 0.97 and recall >= 0.95, (precision, recall, folders)
    assert mixed_folders(folders, labels) == [], folders


@needs_corpus
@pytest.mark.slow
def test_solvay_faces_are_detected(corpus_lib):
    """The 1927 Solvay conference photo: 29 people, at least 27 found at 1600 px renditions."""
    lib, _ = corpus_lib
    from photovfs.catalog.models import Asset

    with lib.session() as s:
        found = s.scalar(select(FaceScan.faces).join(Asset, Asset.id == FaceScan.asset_id)
                         .where(Asset.filename == "solvay.jpg"))
    assert found is not None and found >= 27, found


@needs_corpus
@pytest.mark.slow
def test_named_xmp_regions_carry_onto_detected_faces(corpus_lib):
    """portrait.jpg names Marie and Pierre Curie in MWG regions. Marie faces the camera: her
    detected face takes her name. Pierre is in full profile, which the frontal HOG detector does not
    find: his XMP link stays, and no detected face is wrongly given his name."""
    lib, _ = corpus_lib
    from photovfs.catalog.models import Asset, AssetPerson, Person

    with lib.session() as s:
        aid = s.scalar(select(Asset.id).where(Asset.filename == "portrait.jpg"))
        names = {p.id: p.name for p in s.scalars(select(Person))}
        faces = s.scalars(select(Face).where(Face.asset_id == aid)).all()
        regions = {names[ln.person_id]: ln for ln in s.scalars(select(AssetPerson).where(
            AssetPerson.asset_id == aid, AssetPerson.source == "xmp"))}
    marie = [f for f in faces if names.get(f.person_id) == "Marie Curie"]
    assert len(marie) == 1
    r = regions["Marie Curie"]
    assert iou((marie[0].x, marie[0].y, marie[0].w, marie[0].h), (r.x, r.y, r.w, r.h)) > 0.3
    assert not [f for f in faces if names.get(f.person_id) == "Pierre Curie"]
    assert "portrait.jpg" in [n.name for n in lib.list("by-person/Pierre Curie")]
    assert "portrait.jpg" in [n.name for n in lib.list("by-person/Marie Curie")]
    # and her face in the 1927 Solvay photo joins her (nearest named face, distance < 0.5)
    assert "solvay.jpg" in [n.name for n in lib.list("by-person/Marie Curie")]


@needs_corpus
@pytest.mark.slow
def test_unnamed_folders_are_stable_across_reruns_and_restarts(corpus_lib):
    lib, _ = corpus_lib
    before = folders_of(lib)
    assert any(name.startswith("Unnamed ") for name in before)
    report = run_faces(lib, workers=1)  # nothing new: resumes with everything done
    assert report.assets == 0 and report.skipped >= 28
    assert folders_of(lib) == before
    again = Library.open(lib.config.library)
    try:
        assert folders_of(again) == before
        largest = [n.name for n in again.list("by-person/_largest")]
        unnamed = {k: len(v) for k, v in before.items() if k.startswith("Unnamed ")}
        assert [n.split(" ", 1)[1] for n in largest] == sorted(
            unnamed, key=lambda k: (-unnamed[k], k))
        assert [n.name for n in again.list(f"by-person/_largest/{largest[0]}")] == sorted(
            n.name for n in again.list(f"by-person/{largest[0].split(' ', 1)[1]}"))
    finally:
        again.close()


@needs_corpus
def test_a_rotated_photo_gives_the_same_faces_as_its_upright_copy(tmp_path):
    src = FACES / "face_24.jpeg"
    upright = tmp_path / "upright.jpg"
    rotated = tmp_path / "rotated.jpg"
    with Image.open(src) as im:
        im = im.convert("RGB")
        im.save(upright, quality=95)
        exif = Image.Exif()
        exif[0x0112] = 6  # display = stored pixels turned 90 degrees clockwise
        im.transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif.tobytes())
    det = Detector()
    a = det.faces_in_array(load_rendition(upright, "image", max_pixels=50_000_000))
    b = det.faces_in_array(load_rendition(rotated, "image", max_pixels=50_000_000))
    assert len(a) == len(b) == 1
    assert iou((a[0].x, a[0].y, a[0].w, a[0].h), (b[0].x, b[0].y, b[0].w, b[0].h)) > 0.8
    import numpy as np

    assert float(np.linalg.norm(a[0].vector() - b[0].vector())) < 0.15


OBAMA = ["face_04.jpg", "face_05.jpg", "face_06.jpg", "face_07.jpg"]


@needs_corpus
@pytest.mark.slow
def test_grouping_rules_rejections_naming_and_growth(tmp_path):
    root = _copy_corpus(tmp_path / "lib", OBAMA + ["face_25.jpg"])
    lib = Library.open(root)
    lib.scan()
    run_faces(lib)
    groups = [n.name for n in lib.list("by-person") if n.name.startswith("Unnamed ")]
    assert len(groups) == 1  # Rose Leslie's single face is below min_faces: not shown
    group = groups[0]
    assert sorted(n.name for n in lib.list(f"by-person/{group}")) == OBAMA
    # "this is not P": honoured by every later grouping
    lib.remove(f"by-person/{group}/face_05.jpg")
    run_faces(lib)
    assert sorted(n.name for n in lib.list(f"by-person/{group}")) == [
        "face_04.jpg", "face_06.jpg", "face_07.jpg"]
    # renaming the folder names the group; the name is never changed automatically
    lib.move(f"by-person/{group}", "by-person/Barack Obama")
    run_faces(lib)
    assert "Barack Obama" in [n.name for n in lib.list("by-person")]
    assert group not in [n.name for n in lib.list("by-person")]
    # a new photo of him joins the named person; the rejected photo stays out
    shutil.copy2(FACES / "face_10.jpg", root / "face_10.jpg")
    lib.scan()
    run_faces(lib)
    assert sorted(n.name for n in lib.list("by-person/Barack Obama")) == [
        "face_04.jpg", "face_06.jpg", "face_07.jpg", "face_10.jpg"]
    lib.close()


def _faces_per_asset(db: Path) -> dict[int, int]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT asset_id, count(*) FROM faces GROUP BY asset_id").fetchall()
        return dict(rows)
    finally:
        con.close()


@needs_corpus
@pytest.mark.slow
def test_kill_9_then_resume_leaves_no_duplicate_faces(tmp_path):
    names = ["face_05.jpg", "face_10.jpg", "face_14.jpg", "face_24.jpeg", "face_26.jpg",
             "face_06.jpg", "face_03.png", "face_01.png"]
    root = _copy_corpus(tmp_path / "lib", names)
    lib = Library.open(root)
    lib.scan()
    lib.close()
    db = root / ".photovfs" / "catalog.db"
    proc = subprocess.Popen([str(PHOTOVFS), "faces", str(root), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(db)
            done = con.execute("SELECT count(*) FROM face_scans").fetchone()[0]
            con.close()
        except sqlite3.OperationalError:
            done = 0
        if done >= 2:
            break
        time.sleep(0.05)
    proc.kill()  # SIGKILL
    proc.wait()
    assert 2 <= done < len(names), "the run ended before it could be killed"
    out = subprocess.run([str(PHOTOVFS), "faces", str(root), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    report = json.loads(out.stdout)
    assert report["skipped"] >= 2 and report["assets"] + report["skipped"] == len(names)
    con = sqlite3.connect(db)
    scans = dict(con.execute("SELECT asset_id, faces FROM face_scans").fetchall())
    regions = con.execute("SELECT asset_id, x, y, w, h FROM faces").fetchall()
    con.close()
    assert len(scans) == len(names)
    assert _faces_per_asset(db) == {a: n for a, n in scans.items() if n}
    assert len(regions) == len(set(regions))  # no face stored twice


@needs_corpus
@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare(1) to cut the network off")
def test_pipeline_runs_without_any_network(tmp_path):
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here: {probe.stderr.decode().strip()}")
    root = _copy_corpus(tmp_path / "lib", ["face_05.jpg", "face_06.jpg", "face_10.jpg",
                                           "face_24.jpeg"])
    out = subprocess.run(["unshare", "-n", str(PHOTOVFS), "scan", str(root)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(["unshare", "-n", str(PHOTOVFS), "faces", str(root), "--workers", "2",
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    report = json.loads(out.stdout)
    assert report["assets"] == 4 and report["faces"] == 4 and not report["errors"]
    assert report["groups"]["new_people"] == 1


def test_detected_people_once_named_survive_the_loss_of_the_state_folder(tmp_path):
    """No lock-in for people found by detection: naming a group writes the name and each face's
    region to XMP sidecars (MWG regions, digiKam/Lightroom tags); a rescan without any state
    brings the person, the same photos and the regions back, without running detection."""
    from photovfs.catalog.models import AssetPerson
    from photovfs.metadata import extract

    root = _copy_corpus(tmp_path / "lib", OBAMA)
    lib = Library.open(root)
    lib.scan()
    run_faces(lib)
    (group,) = [n.name for n in lib.list("by-person") if n.name.startswith("Unnamed ")]
    lib.move(f"by-person/{group}", "by-person/Barack Obama")
    lib.sidecars.flush()
    with lib.session() as s:
        regions = sorted((round(r.x, 3), round(r.y, 3)) for r in s.scalars(
            select(AssetPerson).where(AssetPerson.x.is_not(None))))
    assert len(regions) == len(OBAMA)
    facts = extract(root / "face_05.jpg", root / "face_05.jpg.xmp")
    assert facts.people == ["Barack Obama"]
    lib.close()
    shutil.rmtree(root / ".photovfs")
    lib = Library.open(root)
    lib.scan()  # no run_faces: everything comes from the sidecars
    assert sorted(n.name for n in lib.list("by-person/Barack Obama")) == OBAMA
    with lib.session() as s:
        again = sorted((round(r.x, 3), round(r.y, 3)) for r in s.scalars(
            select(AssetPerson).where(AssetPerson.x.is_not(None))))
    assert again == regions
    lib.close()

"""Find faces in a photo's upright display rendition and describe each with dlib's 128-d ResNet.

The input is always `photovfs.thumbs.render(...)` (upright, sRGB, any format), so a rotated photo and
its upright copy give the same faces, and boxes are normalised in the displayed frame.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

RENDITION_SIZE = 1600  # longest side fed to the detector
UPSAMPLE = 1


class FacesUnavailable(RuntimeError):
    """The optional `faces` extra is not installed."""


def model_dir() -> Path:
    """The model files of face-recognition-models, found WITHOUT importing the package
    (its __init__ imports pkg_resources, which recent setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FacesUnavailable("face detection needs: pip install 'photovfs[faces]'")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@dataclass
class Face:
    x: float  # normalised, top-left, in the displayed (upright) frame
    y: float
    w: float
    h: float
    score: float
    descriptor: bytes  # 128 float32, little-endian

    def vector(self):
        import numpy as np

        return np.frombuffer(self.descriptor, dtype="<f4")


class Detector:
    """Loads the three dlib models once; one per process (dlib objects are not picklable)."""

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise FacesUnavailable("face detection needs: pip install 'photovfs[faces]'") from exc
        d = model_dir()
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shaper = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(
            str(d / "dlib_face_recognition_resnet_model_v1.dat"))

    def faces_in_array(self, rgb) -> list[Face]:
        """Faces of an HxWx3 uint8 RGB array."""
        import numpy as np

        height, width = rgb.shape[:2]
        rects, scores, _ = self.detector.run(rgb, UPSAMPLE, 0.0)
        out = []
        for rect, score in zip(rects, scores, strict=True):
            shape = self.shaper(rgb, rect)
            vec = np.asarray(self.encoder.compute_face_descriptor(rgb, shape), dtype="<f4")
            left, top = max(rect.left(), 0), max(rect.top(), 0)
            right, bottom = min(rect.right() + 1, width), min(rect.bottom() + 1, height)
            out.append(Face(x=left / width, y=top / height, w=(right - left) / width,
                            h=(bottom - top) / height, score=float(score),
                            descriptor=vec.tobytes()))
        return out

    def faces_in_file(self, src: Path, media_type: str, *, max_pixels: int) -> list[Face]:
        """Faces of a photo as displayed (one decode of the 1600 px rendition)."""

        return self.faces_in_array(load_rendition(src, media_type, max_pixels=max_pixels))


def load_rendition(src: Path, media_type: str, *, max_pixels: int):
    import numpy as np
    from PIL import Image

    from ..thumbs import render

    data = render(Path(src), media_type, RENDITION_SIZE, max_pixels=max_pixels)
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def iou(a: tuple[float | None, ...], b: tuple[float | None, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes (missing values count as 0)."""
    ax, ay, aw, ah = (v or 0.0 for v in a)
    bx, by, bw, bh = (v or 0.0 for v in b)
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0

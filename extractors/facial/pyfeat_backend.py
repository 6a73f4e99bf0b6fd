"""The py-feat facial backend: py-feat 2.1.5 detectors, AU columns renamed to ours.

py-feat fetches its weights from the Hugging Face hub into its own resource folder
(``<site-packages>/feat/resources``, hub cache layout). Nothing is downloaded here: when a file
is missing the backend stops with one message naming the folder, the files and the
``hf download`` commands to fetch them on a connected machine. Like the MediaPipe backend it
reports every face it finds (box, score, AUs, blendshapes where it has them, head pose), in a
whole frame or in a face crop; ``extractors/facial/extractor.py`` tracks them and keeps the
speaker's.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from extractors.facial.aus import AUS
from extractors.facial.tracks import Face
from vocabulary import portable

POSE_COLUMNS = ("Yaw", "Pitch", "Roll")  # py-feat's head pose in degrees, in our order
# detector → (hub repo under py-feat/, accepted file names) for its default arguments
REQUIRED = {
    "Detectorv2": [("retinaface_r34", ("model.safetensors", "retinaface_r34.safetensors")),
                   ("face_multitask_v2", ("face_multitask_v28.safetensors",)),
                   ("arcface_r50", ("arcface_r50.safetensors",))],
    "Detectorv1": [("retinaface_r34", ("model.safetensors", "retinaface_r34.safetensors")),
                   ("mobilefacenet", ("mobilefacenet_model_best.pth.tar",)),
                   ("pose_mlp_v2", ("pose_mlp_v2.safetensors",)),
                   ("pose_mlp_v2", ("pose_mlp_v2.json",)),
                   ("xgb_au", ("xgb_au_classifier_v2.skops", "xgb_au_classifier.skops")),
                   ("resmasknet", ("config.json",)),
                   ("resmasknet", ("ResMaskNet_Z_resmasking_dropout1_rot30.pth",)),
                   ("l2cs", ("l2cs_gaze360_resnet50.safetensors",)),
                   ("arcface_r50", ("arcface_r50.safetensors",))],
    "MPDetector": [("retinaface_r34", ("model.safetensors", "retinaface_r34.safetensors")),
                   ("mp_facemesh_v2", ("face_landmarks_detector.pt",)),
                   ("mp_blendshapes", ("face_blendshapes.pth",)),
                   ("bs_to_au", ("bs_to_au_pls_v2.npz",)),
                   ("l2cs", ("l2cs_gaze360_resnet50.safetensors",)),
                   ("arcface_r50", ("arcface_r50.safetensors",))],
}


def find_weights(resources: Path, detector: str) -> list[Path]:
    """The weight files of ``detector`` in the hub cache layout; ValueError naming what lacks."""
    found, missing = [], []
    for repo, names in REQUIRED[detector]:
        folder = resources / f"models--py-feat--{repo}"
        ref = folder / "refs" / "main"
        revision = ref.read_text().strip() if ref.is_file() else ""
        paths = [folder / "snapshots" / revision / n for n in names] if revision else []
        present = [p for p in paths if p.is_file()]
        if present:
            found.append(present[0])
        else:
            missing.append((repo, names[0]))
    if missing:
        files = ", ".join(f"py-feat/{repo}/{name}" for repo, name in missing)
        commands = "; ".join(f"hf download py-feat/{repo} {name} --cache-dir {resources}"
                             for repo, name in missing)
        raise ValueError(
            f"{resources}: py-feat's {detector} weights are missing ({files}); on a machine "
            f"with internet run `{commands}` and copy that folder here, or set "
            "facial.backend: mediapipe.")
    return found


class PyFeatBackend:
    """One py-feat detector shared by all threads (calls are serialised by a lock)."""

    def __init__(self, config):
        if config.pyfeat_detector not in REQUIRED:
            raise ValueError(f"facial.pyfeat_detector {config.pyfeat_detector!r} is unknown; "
                             f"use one of {', '.join(REQUIRED)}.")
        import feat.utils.io

        resources = Path(feat.utils.io.get_resource_path())
        weights = find_weights(resources, config.pyfeat_detector)
        self.detector = _make(config.pyfeat_detector)
        self.threshold = config.min_face_confidence
        identity = "|".join(f"{p.relative_to(resources)}:{p.stat().st_size}" for p in weights)
        self.version = (f"py-feat-{importlib.metadata.version('py-feat')}+"
                        f"{config.pyfeat_detector}+"
                        f"{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
                        f"{portable.version_tag()}")
        self.aus = list(AUS)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def clip(self, whole_frames: bool) -> Iterator[Callable[[float, np.ndarray], list[Face]]]:
        """Yield ``faces(t, rgb)``: every face py-feat finds in a frame or a face crop."""
        yield self._faces

    def _faces(self, t: float, rgb: np.ndarray) -> list[Face]:
        import torch
        from feat.utils import MP_BLENDSHAPE_NAMES

        frame = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
        with self._lock:
            fex = self.detector.detect(frame, data_type="tensor", progress_bar=False,
                                       face_detection_threshold=self.threshold)
        rows = fex[fex["FaceRectWidth"].notna()]
        height, width = rgb.shape[:2]
        names = list(MP_BLENDSHAPE_NAMES)
        has_blend = all(n in rows.columns for n in names)
        has_pose = all(c in rows.columns for c in POSE_COLUMNS)
        faces = []
        for _, row in rows.iterrows():
            x, y = row["FaceRectX"] / width, row["FaceRectY"] / height
            box = (max(0.0, x), max(0.0, y), min(1.0, x + row["FaceRectWidth"] / width),
                   min(1.0, y + row["FaceRectHeight"] / height))
            score = float(row["FaceScore"]) if "FaceScore" in rows.columns else None
            faces.append(Face(
                box, score, row[self.aus].to_numpy(np.float32),
                row[names].to_numpy(np.float32) if has_blend else None,
                row[list(POSE_COLUMNS)].to_numpy(np.float32) if has_pose else None))
        return faces


def _make(name: str):
    """The py-feat detector ``name``. Its face detectors' constructors call
    ``torch.set_grad_enabled(False)``, which would switch autograd off for the whole thread
    (a later training in the same process failed): the caller's mode is put back."""
    import torch

    with torch.set_grad_enabled(torch.is_grad_enabled()):
        return _construct(name)


def _construct(name: str):
    if name == "Detectorv2":
        from feat.detector_v2 import Detectorv2

        return Detectorv2(device="cpu")
    if name == "Detectorv1":
        from feat.detector import Detectorv1

        return Detectorv1(device="cpu")
    from feat.MPDetector import MPDetector

    return MPDetector(device="cpu")

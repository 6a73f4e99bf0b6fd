"""Facial action units over time of the speaker's face, from one of two backends.

Per sampled frame (``fps``, one decode, ``video.py``) every face is found and read:
``detector: full_range`` runs CenterFace on the whole frame (``detector.py``) and the backend
on a square crop around each face, so a face 40 px high in a 1080p frame is read like a
close-up; ``short_range`` gives the whole frame to the backend, whose own detector expects a
face near the camera (cheaper). Faces are linked into tracks by box overlap (``tracks.py``)
and one track is kept: the speaker's (``speaker.py``). Backends: ``mediapipe`` (FaceLandmarker
blendshapes mapped to FACS AUs, ``mediapipe_backend.py``) and ``pyfeat``
(``pyfeat_backend.py``); all of them in ``extractors/facial/``. Frames without the chosen
face are masked: ``face_present`` is false and their AU entry null.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from extractors.audio import decode_audio
from extractors.base import (
    Failure,
    MediaError,
    Result,
    UtteranceInput,
    file_digest,
    file_size,
)
from extractors.code_hash import code_hash
from extractors.configs import FacialConfig
from extractors.facial.aus import AUS, BLENDSHAPE_AUS, BLENDSHAPES
from extractors.facial.coverage import coverage_markdown
from extractors.facial.detector import FullRangeDetector, crop_face
from extractors.facial.speaker import LOUDNESS_WINDOW, choose_speaker, loudness_envelope
from extractors.facial.tracks import Face, Track, track_faces
from extractors.facial.video import sample_frames

AUDIO_RATE = 16000  # loudness only: any rate that keeps speech's energy will do


CHOICES = {"backend": ("mediapipe", "pyfeat"), "detector": ("full_range", "short_range"),
           "speaker": ("active", "largest")}


def _make_backend(config: FacialConfig):
    if config.backend == "mediapipe":
        from extractors.facial.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(config)
    from extractors.facial.pyfeat_backend import PyFeatBackend

    return PyFeatBackend(config)


class FacialExtractor:
    modality = "facial"

    def __init__(self, config: FacialConfig):
        for name, allowed in CHOICES.items():
            if getattr(config, name) not in allowed:
                raise ValueError(f"facial.{name} {getattr(config, name)!r} is unknown; use "
                                 f"{' or '.join(allowed)}.")
        self.backend = _make_backend(config)
        self.detector = (FullRangeDetector(config.detect_width, config.min_face_confidence)
                         if config.detector == "full_range" else None)
        self.config = config
        self.version = f"{code_hash(type(self).__module__)}+{self.backend.version}"
        vector = pa.list_(pa.float32(), len(AUS))
        self.schema = pa.schema([
            pa.field("frame_times", pa.list_(pa.float32())),
            pa.field("face_present", pa.list_(pa.bool_())),
            pa.field("aus", pa.list_(vector)),
            pa.field("blendshapes", pa.list_(pa.list_(pa.float32(), len(BLENDSHAPES)))),
            pa.field("face_box", pa.list_(pa.list_(pa.float32(), 4))),  # x, y, width, height
            pa.field("face_confidence", pa.list_(pa.float32())),
            pa.field("head_pose", pa.list_(pa.list_(pa.float32(), 3))),  # yaw, pitch, roll
            pa.field("n_faces", pa.list_(pa.int32())),
            pa.field("n_frames", pa.int32()),
            pa.field("n_face_frames", pa.int32()),
            pa.field("coverage", pa.float32()),
            pa.field("n_tracks", pa.int32()),
            pa.field("speaker_choice", pa.string()),  # only | active | largest
        ])
        self.metadata = {"au_names": list(AUS), "backend": config.backend,
                         "detector": config.detector, "blendshape_aus": BLENDSHAPE_AUS,
                         "face_box": "x, y, width, height; shares of the frame",
                         "head_pose": "yaw, pitch, roll in degrees"}

    def digest(self, utt: UtteranceInput) -> str | Failure:
        if not utt.video_path:
            return Failure("no_media", "the manifest has no video for this utterance.")
        return file_digest(utt.video_path, extra=repr((utt.start_s, utt.end_s)))

    def cost(self, utt: UtteranceInput) -> float:
        return file_size(utt.video_path)

    def extract(self, utts: list[UtteranceInput]) -> list[Result]:
        return [self._one(utt) for utt in utts]

    def summarize(self, features: Path) -> str:
        """Markdown for the stage summary: the distribution of coverage, face_lost count."""
        return coverage_markdown(features, self.config.min_coverage)

    def close(self) -> None:
        """Release the detector now (a one-off use; flows keep theirs for the next run)."""
        if hasattr(self.backend, "close"):
            self.backend.close()

    def _one(self, utt: UtteranceInput) -> Result:
        c = self.config
        full_range = self.detector is not None
        width = c.full_range_max_width if full_range else c.max_width
        times: list[float] = []
        frames: list[list[Face]] = []
        try:
            with self.backend.clip(whole_frames=not full_range) as read:
                for t, rgb in sample_frames(utt.video_path, c.fps, c.max_frames, width,
                                            utt.start_s, utt.end_s):
                    faces = self._read_crops(read, t, rgb) if full_range else read(t, rgb)
                    times.append(t)
                    frames.append(sorted(faces, key=_confidence, reverse=True)[:c.max_faces])
        except MediaError as exc:
            return Failure(exc.kind, str(exc))
        if not times:
            return Failure("no_frames", f"{utt.video_path}: no video frames could be decoded "
                           "in the utterance's time span.")
        tracks = track_faces(frames, c.track_iou)
        readable = sum(any(f.aus is not None for f in t.faces.values()) for t in tracks)
        if not readable:
            hint = "" if full_range else " or, for small faces, set facial.detector: full_range"
            return Failure("no_face", f"{utt.video_path}: no face found in {len(times)} sampled "
                           f"frames; check the clip, lower facial.min_face_confidence{hint}.")
        envelope = (self._loudness(utt, np.array(times)) if readable > 1
                    and c.speaker == "active" else None)
        chosen, how = choose_speaker(tracks, len(times), envelope, c.speaker)
        return _row(times, frames, chosen, len(tracks), how)

    def _read_crops(self, read, t: float, rgb: np.ndarray) -> list[Face]:
        """Each face the full-range detector finds, read by the backend on its crop."""
        c = self.config
        faces = []
        found_boxes = sorted(self.detector.detect(rgb), key=lambda d: d[1], reverse=True)
        for box, score in found_boxes[:c.max_faces]:
            found = read(t, crop_face(rgb, box, c.crop_margin, c.crop_size))
            # the crop is centred on the face: what the backend found nearest its centre
            inner = min(found, default=None, key=lambda f: abs(f.centre[0] - 0.5)
                        + abs(f.centre[1] - 0.5))
            faces.append(Face(box, score, *((inner.aus, inner.blendshapes, inner.pose)
                                            if inner else (None, None, None))))
        return faces

    def _loudness(self, utt: UtteranceInput, times: np.ndarray) -> np.ndarray | None:
        """The loudness at each frame time, from the utterance's own audio; None without one."""
        own = utt.audio_path and utt.audio_path != utt.video_path
        try:
            audio = (decode_audio(utt.audio_path, AUDIO_RATE) if own else
                     decode_audio(utt.video_path, AUDIO_RATE, utt.start_s, utt.end_s))
        except MediaError:
            return None
        return loudness_envelope(audio, AUDIO_RATE, times, LOUDNESS_WINDOW / self.config.fps)


def _confidence(face: Face) -> float:
    return face.score if face.score is not None else face.area


def _row(times: list[float], frames: list[list[Face]], chosen: Track, n_tracks: int,
         how: str) -> dict:
    faces = [chosen.faces.get(i) for i in range(len(times))]
    present = [f is not None and f.aus is not None for f in faces]
    blends = [f.blendshapes if p else None for f, p in zip(faces, present, strict=True)]
    return {
        "frame_times": np.array(times, np.float32),
        "face_present": present,
        "aus": [f.aus if p else None for f, p in zip(faces, present, strict=True)],
        "blendshapes": blends if any(b is not None for b in blends) else None,
        "face_box": [None if f is None else np.array(
            [f.box[0], f.box[1], f.box[2] - f.box[0], f.box[3] - f.box[1]], np.float32)
            for f in faces],
        "face_confidence": [None if f is None else f.score for f in faces],
        "head_pose": [None if f is None else f.pose for f in faces],
        "n_faces": [len(found) for found in frames],
        "n_frames": len(times),
        "n_face_frames": sum(present),
        "coverage": sum(present) / len(times),
        "n_tracks": n_tracks,
        "speaker_choice": how,
    }

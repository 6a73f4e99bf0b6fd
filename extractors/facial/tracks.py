"""Faces seen in one sampled frame, and tracks that follow each face through a clip.

A face is kept with its box normalised to the frame (0..1, so boxes compare across
resolutions), the detector's confidence, and what the landmarker read from it (AUs,
blendshapes, head pose), which is absent when the landmarker could not read it (e.g. a
profile view that the detector still found). Tracks link boxes of consecutive sampled frames
by overlap (IoU): enough at 5 frames per second for people who sit and talk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1, normalised to the frame
    score: float | None  # the detector's confidence; None where the detector gives none
    aus: np.ndarray | None = None  # (17,) 0..1, None when the landmarker could not read it
    blendshapes: np.ndarray | None = None  # (52,)
    pose: np.ndarray | None = None  # yaw, pitch, roll in degrees

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass
class Track:
    faces: dict[int, Face] = field(default_factory=dict)  # sampled frame index → face

    @property
    def last(self) -> Face:
        return self.faces[max(self.faces)]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def track_faces(frames: list[list[Face]], min_iou: float) -> list[Track]:
    """Link the faces of successive frames into tracks, best overlap first.

    Each face joins the track whose latest box it overlaps most (at least ``min_iou``); a
    track that misses frames keeps its latest box, so a face that is lost for a moment and
    comes back where it was continues its track. A face that joins no track starts one.
    """
    tracks: list[Track] = []
    for index, faces in enumerate(frames):
        pairs = sorted(((iou(f.box, t.last.box), i, k) for i, f in enumerate(faces)
                        for k, t in enumerate(tracks)), reverse=True)
        taken_faces: set[int] = set()
        taken_tracks: set[int] = set()
        for overlap, i, k in pairs:
            if overlap < min_iou:
                break
            if i in taken_faces or k in taken_tracks:
                continue
            tracks[k].faces[index] = faces[i]
            taken_faces.add(i)
            taken_tracks.add(k)
        for i, face in enumerate(faces):
            if i not in taken_faces:
                tracks.append(Track({index: face}))
    return tracks

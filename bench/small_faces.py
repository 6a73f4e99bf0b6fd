"""Faces as TV and lab cameras film them, built from ../shared/data/ravdess_av: what each
facial detector finds, whose face is kept, and how the small faces' AUs compare.

    python bench/small_faces.py [--two-face 12] [--seed 14]

Scenes (``tests/face_scenes.py``): each of the 18 clips with its face 40-120 px high at a
random place of a 1920x1080 frame (every third letterboxed), and ``--two-face`` scenes of a
speaking clip beside a different clip played backwards or frozen, left and right swapped.
Printed: coverage (share of sampled frames with the face) of ``full_range`` and
``short_range``; how often the speaker is chosen; the correlation per AU family between the
close-up's AU time series (the original clip, ``short_range``) and the small face's
(``full_range``); whether the surprised clips still raise brows and drop the jaw more than the
neutral ones of the same statement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/face_scenes.py

from mcncl.offline import go_offline

go_offline()

from extractors.corpora.ravdess import prepare_ravdess  # noqa: E402
from extractors.facial import AUS, FacialConfig  # noqa: E402
from tests.face_scenes import (  # noqa: E402
    au_family_correlations,
    extract_clips,
    mean_aus,
    small_face_scenes,
    two_face_scenes,
)

REPO = Path(__file__).resolve().parents[1]
RAVDESS = REPO.parent / "shared" / "data" / "ravdess_av"


def coverage(rows: list) -> tuple[float, int, int]:
    """Mean coverage (no_face counts 0), no_face clips, clips with a face in under half."""
    values = [r["coverage"] if isinstance(r, dict) else 0.0 for r in rows]
    return (float(np.mean(values)), sum(not isinstance(r, dict) for r in rows),
            sum(v < 0.5 for v in values))


def surprise_holds(rows: list, clips: list[Path]) -> str:
    """'surprised > neutral' on brows (AU01+AU02) and jaw (AU26), per statement."""
    labels = {u["utterance_id"]: (u["label"], u["text"])
              for u in prepare_ravdess(RAVDESS)[0].to_pylist()}
    groups: dict[tuple[str, str], list[np.ndarray]] = {}
    for clip, row in zip(clips, rows, strict=True):
        key = next(v for k, v in labels.items() if k.endswith(clip.stem))
        if isinstance(row, dict):
            groups.setdefault(key, []).append(mean_aus(row))
    brows, jaw = [AUS.index("AU01"), AUS.index("AU02")], AUS.index("AU26")
    checks = []
    for statement in sorted({text for _, text in labels.values()}):
        surprised = np.mean(groups[("surprised", statement)], axis=0)
        neutral = np.mean(groups[("neutral", statement)], axis=0)
        checks.append(surprised[brows].sum() > neutral[brows].sum()
                      and surprised[jaw] > neutral[jaw])
    return f"{sum(checks)} of {len(checks)} statements"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--two-face", type=int, default=12)
    parser.add_argument("--seed", type=int, default=14, help="places, sizes and pairs")
    args = parser.parse_args()
    clips = sorted(RAVDESS.glob("*.mp4"))
    full, short = FacialConfig(), FacialConfig(detector="short_range")
    with tempfile.TemporaryDirectory() as tmp:
        small = small_face_scenes(clips, Path(tmp) / "small", args.seed)
        speakers = [c for c in clips if c.name.startswith("01-")]  # audio-video clips
        pairs = two_face_scenes(speakers, clips, Path(tmp) / "two", args.two_face, args.seed)
        full_rows, short_rows = extract_clips(full, small), extract_clips(short, small)
        closeups = extract_clips(short, clips)
        for name, rows in (("full_range", full_rows), ("short_range", short_rows)):
            mean, no_face, under_half = coverage(rows)
            print(f"{name}: small faces found in {mean:.1%} of sampled frames; no_face "
                  f"{no_face} of {len(rows)} clips, under half the frames {under_half}")
        for speaker in ("active", "largest"):
            rows = extract_clips(replace(full, speaker=speaker), [s for s, _ in pairs])
            right = sum(isinstance(r, dict) and _left(r) == left
                        for r, (_, left) in zip(rows, pairs, strict=True))
            print(f"speaker: {speaker}: the speaking face kept in {right} of {len(pairs)} "
                  f"two-face scenes ({right / len(pairs):.0%})")
        found = [(c, f) for c, f in zip(closeups, full_rows, strict=True)
                 if isinstance(c, dict) and isinstance(f, dict)]
        families = au_family_correlations([c for c, _ in found], [f for _, f in found])
        print("AU correlation, close-up vs small face: " + ", ".join(
            f"{family} {r:.2f}" for family, r in families.items()))
        print(f"surprised > neutral (brows and jaw) on the small faces: "
              f"{surprise_holds(full_rows, clips)}; on the close-ups: "
              f"{surprise_holds(closeups, clips)}")


def _left(row: dict) -> bool:
    """Whether the kept face is on the left half of the frame, in most frames."""
    xs = [b[0] + b[2] / 2 for b in row["face_box"] if b is not None]
    return float(np.median(xs)) < 0.5


if __name__ == "__main__":
    main()

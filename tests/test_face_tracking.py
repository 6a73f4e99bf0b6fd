"""Tracks, the speaker's choice and the coverage summary, on faces given as numbers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extractors.facial.aus import AUS
from extractors.facial.coverage import coverage_histogram, coverage_markdown
from extractors.facial.speaker import choose_speaker, loudness_envelope, prominence
from extractors.facial.tracks import Face, iou, track_faces

MOUTH = [AUS.index("AU25"), AUS.index("AU26")]


def face(x: float, y: float, size: float = 0.1, mouth: float | None = 0.0) -> Face:
    aus = None
    if mouth is not None:
        aus = np.zeros(len(AUS), np.float32)
        aus[MOUTH] = mouth
    return Face((x, y, x + size, y + size), 0.9, aus)


def test_iou():
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 1, 1), (0.5, 0, 1.5, 1)) == 0.5 / 1.5
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_tracks_follow_moving_faces_across_a_gap_and_start_for_newcomers():
    frames = [[face(0.10, 0.5), face(0.70, 0.5)],
              [face(0.71, 0.5), face(0.12, 0.5)],  # listed the other way round
              [face(0.72, 0.5)],  # the left face is lost for a frame
              [face(0.13, 0.5), face(0.73, 0.5), face(0.40, 0.1)]]  # and back; a newcomer
    tracks = track_faces(frames, min_iou=0.3)
    assert len(tracks) == 3
    left, right, new = tracks
    assert sorted(left.faces) == [0, 1, 3] and all(f.box[0] < 0.2 for f in left.faces.values())
    assert sorted(right.faces) == [0, 1, 2, 3]
    assert sorted(new.faces) == [3]


def test_the_mouth_that_follows_the_loudness_is_the_speaker():
    loud = np.array([-60, -60, -20, -20, -20, -20, -60, -60, -60, -20, -20, -20, -60, -60.0])
    wobble = [0.2, 0.6] * 7  # a mouth that opens and closes from frame to frame
    # the speaker's mouth moves while the voice sounds; the other's while it is quiet
    pairs = list(zip(loud, wobble, strict=True))
    talking = [face(0.1, 0.5, mouth=w if v > -40 else 0.0) for v, w in pairs]
    other = [face(0.6, 0.3, size=0.3, mouth=w if v < -40 else 0.1) for v, w in pairs]
    tracks = track_faces([[a, b] for a, b in zip(talking, other, strict=True)], 0.3)
    chosen, how = choose_speaker(tracks, len(loud), loud, "active")
    assert how == "active" and chosen.faces[0].box[0] == 0.1
    # no audio, a flat one, or speaker: largest → the larger, more central, as long-lived face
    for envelope, mode in ((None, "active"), (np.full(14, -30.0), "active"), (loud, "largest")):
        chosen, how = choose_speaker(tracks, len(loud), envelope, mode)
        assert how == "largest" and chosen.faces[0].box[0] == 0.6


def test_a_single_readable_face_is_the_only_choice():
    frames = [[face(0.1, 0.5), face(0.6, 0.5, mouth=None)] for _ in range(4)]
    chosen, how = choose_speaker(track_faces(frames, 0.3), 4, None, "active")
    assert how == "only" and chosen.faces[0].box[0] == 0.1


def test_prominence_prefers_large_central_lasting_faces():
    big, small = track_faces([[face(0.35, 0.35, 0.3), face(0.0, 0.0, 0.1)]] * 2, 0.3)
    assert prominence(big, 2) > 5 * prominence(small, 2)
    assert prominence(track_faces([[face(0.35, 0.35, 0.3)], []], 0.3)[0], 2) == \
        prominence(big, 2) / 2


def test_loudness_envelope_in_db():
    rate = 1000
    audio = np.concatenate([np.full(rate, 0.1), np.zeros(rate)])
    levels = loudness_envelope(audio, rate, np.array([0.5, 1.5]), 0.2)
    assert levels[0] == pytest.approx(-20.0) and levels[1] == -80.0


def test_coverage_summary(tmp_path):
    values = [1.0, 0.95, 0.5, 0.35, 0.0]
    assert coverage_histogram(values) == [1, 0, 0, 1, 0, 1, 0, 0, 0, 2]
    path = tmp_path / "facial.parquet"
    pq.write_table(pa.table({"coverage": pa.array(values + [None], pa.float32())}), path)
    text = coverage_markdown(path, min_coverage=0.5)
    assert "5 utterances, median 0.50; face_lost (below 0.50): 2" in text
    assert "| utterances | 1 | 0 | 0 | 1 | 0 | 1 | 0 | 0 | 0 | 2 |" in text


def test_report_shows_the_coverage_histogram(tmp_path):
    from mcncl.report import _face_coverage

    path = tmp_path / "facial.parquet"
    table = pa.table({"coverage": pa.array([1.0, 0.95, 0.2], pa.float32())})
    pq.write_table(table.replace_schema_metadata({"config": '{"min_coverage": 0.3}'}), path)
    html = _face_coverage(path)
    assert "3 utterances; face_lost (coverage below 0.30): 1" in html
    assert "<td>0.9-1.0</td><td>2</td>" in html and "<td>0.2-0.3</td><td>1</td>" in html
    assert "no facial features" in _face_coverage(tmp_path / "absent.parquet")

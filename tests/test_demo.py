from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import av

from extractors.corpora.meld import prepare_meld


def test_demo_corpus_layout_and_media(demo_corpus: Path):
    table, report = prepare_meld(demo_corpus, name="demo")
    assert report.counts == {}  # every CSV row has its clip, every clip its row
    rows = table.to_pylist()
    assert len(rows) >= 48
    assert len({r["dialogue_id"] for r in rows}) >= 8
    assert {r["split"] for r in rows} == {"train", "dev", "test"}
    labels = Counter(r["label"] for r in rows)
    assert len(labels) >= 4 and min(labels.values()) >= 6
    for split in ("dev", "test"):
        assert {r["label"] for r in rows if r["split"] == split} == set(labels)
    for r in rows[:: len(rows) // 6]:
        with av.open(str(demo_corpus / r["video_path"])) as clip:
            video, audio = clip.streams.video[0], clip.streams.audio[0]
            assert (video.width, video.height) == (640, 360)
            assert audio.duration * audio.time_base > 0.8  # real speech, not a blip


def test_demo_prosody_differs_by_emotion(demo_corpus: Path):
    """Angry lines are spoken faster than disgusted ones: the audio carries the label."""
    with open(demo_corpus / "train_sent_emo.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rate: dict[str, list[float]] = {}
    for r in rows:
        name = f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.mp4"
        clip = demo_corpus / "train" / "train_splits" / name
        with av.open(str(clip)) as container:
            stream = container.streams.audio[0]
            seconds = float(stream.duration * stream.time_base)
        rate.setdefault(r["Emotion"], []).append(len(r["Utterance"]) / seconds)
    mean = {k: sum(v) / len(v) for k, v in rate.items()}
    assert mean["anger"] > mean["neutral"] > mean["disgust"]


def test_a_script_line_that_looks_like_an_option_is_spoken_not_obeyed(tmp_path: Path):
    """A line ``-f<file>`` must not make espeak-ng read (and speak) that file."""
    from extractors.corpora.demo import CLIP_DIRS, Line, _render

    secret = tmp_path / "secret.txt"
    secret.write_text("private words " * 200)  # read aloud this would last about two minutes
    line = Line("train", 0, 0, "Anna", "neutral", f"-f{secret}")
    (tmp_path / CLIP_DIRS["train"]).mkdir(parents=True)
    plain = Line("train", 0, 1, "Anna", "neutral", f"f{secret}")
    assert abs(_render(line, tmp_path) - _render(plain, tmp_path)) < 1.0
    assert _render(line, tmp_path) < 30  # the path spoken (long in pytest's tmp folder)

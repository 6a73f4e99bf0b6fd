from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from extractors.corpora import CorpusError, prepare_corpus, write_manifest
from extractors.corpora.meld import LABELS, parse_timestamp, prepare_meld
from extractors.inputs import read_inputs
from tests.media import make_clip

HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
          "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]


def write_csv(path: Path, rows: list[list], header=HEADER, encoding="utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def row(n, text, emotion, dia, utt, start="00:16:16,059", end="00:16:21,731"):
    return [n, text, "Chandler", emotion, "neutral", dia, utt, 1, 1, start, end]


@pytest.fixture
def meld_tree(tmp_path: Path) -> Path:
    """Train split with a good clip, a missing clip, a 0-byte clip and an unlisted clip."""
    write_csv(tmp_path / "train_sent_emo.csv", [
        row(1, "Oh my God, he’s lost it. He’s totally lost it.", "Surprise", 0, 0),
        row(2, "What’s the café called?", "neutral", 0, 1, "00:00:01,5", "00:00:03,000"),
        row(3, "I hate this.", "anger", 1, 0),
        row(4, "Fine.", "neutral", 1, 1, "soon", "later"),
    ])
    write_csv(tmp_path / "dev_sent_emo.csv", [row(1, "Great!", "joy", 0, 0)])
    clips = tmp_path / "train" / "train_splits"
    make_clip(clips / "dia0_utt0.mp4")
    make_clip(clips / "dia1_utt0.mp4")
    (clips / "dia1_utt1.mp4").write_bytes(b"")  # corrupt: 0 bytes
    make_clip(clips / "dia9_utt9.mp4")  # on disk, no CSV row
    return tmp_path


def test_meld_manifest_rows_paths_and_report(meld_tree: Path):
    table, report = prepare_meld(meld_tree)
    rows = {r["utterance_id"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["meld/dev/dia0_utt0", "meld/train/dia0_utt0", "meld/train/dia0_utt1",
                            "meld/train/dia1_utt0", "meld/train/dia1_utt1"]
    first = rows["meld/train/dia0_utt0"]
    assert first["label"] == "surprise"  # lower-cased
    assert first["text"] == "Oh my God, he’s lost it. He’s totally lost it."
    assert first["audio_path"] == first["video_path"] == "train/train_splits/dia0_utt0.mp4"
    assert first["source_start_s"] == pytest.approx(976.059)
    assert first["source_end_s"] == pytest.approx(981.731)
    assert first["start_s"] is None  # the clip is the whole utterance
    assert rows["meld/train/dia0_utt1"]["source_start_s"] == pytest.approx(1.5)
    assert rows["meld/train/dia0_utt1"]["video_path"] is None  # missing clip
    assert rows["meld/train/dia1_utt1"]["video_path"] == "train/train_splits/dia1_utt1.mp4"
    assert rows["meld/train/dia1_utt0"]["dialogue_id"] == "meld/train/dia1"
    assert rows["meld/dev/dia0_utt0"]["video_path"] is None  # no dev clip folder
    assert report.counts == {"missing_clip": 1, "corrupt_clip": 1, "unlisted_clip": 1,
                             "no_clip_folder": 1, "bad_timestamp": 1}
    assert report.examples["unlisted_clip"] == ["train/train_splits/dia9_utt9.mp4"]
    assert "empty file" in report.examples["corrupt_clip"][0]
    assert table.schema.metadata[b"corpus_root"].decode() == str(meld_tree.resolve())


def test_meld_text_only(tmp_path: Path):
    write_csv(tmp_path / "dev_sent_emo.csv", [row(1, "Great!", "joy", 0, 0)])
    table, report = prepare_meld(tmp_path, name="m")
    assert table.num_rows == 1
    assert table["audio_path"].null_count == 1
    assert report.counts == {"no_clip_folder": 1}
    assert table["utterance_id"][0].as_py() == "m/dev/dia0_utt0"


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([row(1, "a", "joy", 0, 0), row(2, "b", "joy", 0, 0)], HEADER,
         r"train_sent_emo.csv:3: utterance id 'meld/train/dia0_utt0' already appears at .*:2"),
        ([row(1, "a", "happy", 0, 0)], HEADER,
         r"train_sent_emo.csv:2: label 'happy' is not one of neutral, joy"),
        ([[1, "a", "x", "joy", "neutral", 0, 0]], HEADER[:3] + HEADER[4:8],
         r"train_sent_emo.csv: required column\(s\) Emotion missing"),
        ([row(1, "a", "joy", "zero", 0)], HEADER,
         r"train_sent_emo.csv:2: Dialogue_ID/Utterance_ID must be integers"),
    ],
)
def test_meld_rejects_malformed_csv(tmp_path: Path, rows, header, message):
    write_csv(tmp_path / "train_sent_emo.csv", rows, header=header)
    with pytest.raises(CorpusError, match=message):
        prepare_meld(tmp_path)


def test_meld_wrong_encoding_is_named_and_can_be_chosen(tmp_path: Path):
    write_csv(tmp_path / "train_sent_emo.csv", [row(1, "It’s fine", "joy", 0, 0)],
              encoding="cp1252")
    with pytest.raises(CorpusError, match=r"line 2 is not valid utf-8 \(byte 0x92\).*iconv"):
        prepare_meld(tmp_path)
    table, _ = prepare_corpus("meld", tmp_path, name="meld", encoding="cp1252")
    assert table["text"][0].as_py() == "It’s fine"


def test_meld_no_csv(tmp_path: Path):
    with pytest.raises(CorpusError, match="none of train_sent_emo.csv"):
        prepare_meld(tmp_path)


def test_parse_timestamp():
    assert parse_timestamp("00:16:16,059") == pytest.approx(976.059)
    assert parse_timestamp("1:02:03.5") == pytest.approx(3723.5)
    assert parse_timestamp("16:16") is None
    assert parse_timestamp("") is None


def test_labels_are_meld_seven():
    assert LABELS == ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")


def test_meld_follows_a_linked_clip_folder_and_csv(meld_tree: Path, tmp_path_factory):
    """Clips and CSVs on another disk, reached through links (with a cycle among the clips)."""
    elsewhere = tmp_path_factory.mktemp("disk2")
    clips = meld_tree / "train" / "train_splits"
    clips.rename(elsewhere / "clips")
    clips.symlink_to(elsewhere / "clips", target_is_directory=True)
    (meld_tree / "train_sent_emo.csv").rename(elsewhere / "train.csv")
    (meld_tree / "train_sent_emo.csv").symlink_to(elsewhere / "train.csv")
    (elsewhere / "clips" / "up").symlink_to(meld_tree, target_is_directory=True)
    table, report = prepare_meld(meld_tree)
    rows = {r["utterance_id"]: r for r in table.to_pylist()}
    assert rows["meld/train/dia0_utt0"]["video_path"] == "train/train_splits/dia0_utt0.mp4"
    assert report.counts == {"missing_clip": 1, "corrupt_clip": 1, "unlisted_clip": 1,
                             "no_clip_folder": 1, "bad_timestamp": 1}


def test_a_relative_root_is_stored_relative_to_the_manifest_so_every_clone_writes_the_same(
        meld_tree: Path, monkeypatch):
    monkeypatch.chdir(meld_tree.parent)
    relative = Path(meld_tree.name)
    out = Path("project-data") / "manifests" / "m.parquet"
    write_manifest("meld", relative, out, name="meld")
    stored = pq.read_schema(out).metadata[b"corpus_root"].decode()
    assert stored == f"../../{meld_tree.name}"  # no absolute path of this machine
    monkeypatch.chdir("/")  # read from anywhere: resolved against the manifest's folder
    [first] = [u for u in read_inputs(meld_tree.parent / out)
               if u.utterance_id == "meld/train/dia0_utt0"]
    assert first.video_path == str(meld_tree / "train/train_splits/dia0_utt0.mp4")
    absolute = write_manifest("meld", meld_tree, meld_tree.parent / "abs.parquet", name="meld")
    assert absolute[0].schema.metadata[b"corpus_root"].decode() == str(meld_tree.resolve())

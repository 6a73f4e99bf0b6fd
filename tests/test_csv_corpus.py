from __future__ import annotations

from pathlib import Path

import pytest

from extractors.corpora import CorpusError
from extractors.corpora.csv_corpus import prepare_csv


def test_csv_corpus(tmp_path: Path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.wav").write_bytes(b"x")
    csv_path = tmp_path / "corpus.csv"
    csv_path.write_text(
        "utterance_id,text,label,split,audio_path,dialogue_id,speaker,start_s\n"
        "u1,Hello there,Happy,train,clips/a.wav,d1,ann,0.5\n"
        "u2,Go away,angry,dev,clips/missing.wav,d1,bob,\n"
        "u3,Fine,happy,test,,,ann,\n",
        encoding="utf-8",
    )
    table, report = prepare_csv(csv_path, name="mine")
    rows = table.to_pylist()
    assert [r["turn"] for r in rows] == [0, 1, 0]
    assert rows[0]["label"] == "happy" and rows[0]["start_s"] == 0.5
    assert rows[0]["audio_path"] == "clips/a.wav"
    assert rows[1]["audio_path"] is None and report.counts == {"missing_media": 1}
    assert rows[2]["dialogue_id"] == "u3"
    assert table.schema.metadata[b"labels"] == b'["angry", "happy"]'


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("utterance_id,text,label,split\nu1,a,joy,train\n", {},
         "needs an audio_path or video_path column"),
        ("utterance_id,text,label,split,audio_path\nu1,a,joy,train,\n", {"labels": ("sad",)},
         r"corpus.csv:2: label 'joy' is not one of sad"),
        ("utterance_id,text,label,split,audio_path,start_s\nu1,a,joy,train,,x\n", {},
         r"corpus.csv:2: column start_s must be a number, got 'x'"),
        ("utterance_id,text,label,split,audio_path\nu1,a,joy,training,\n", {},
         r"corpus.csv:2: split 'training' is not one of train, dev, test"),
    ],
)
def test_csv_corpus_errors(tmp_path: Path, content, kwargs, message):
    (tmp_path / "corpus.csv").write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        prepare_csv(tmp_path / "corpus.csv", **kwargs)


def test_csv_corpus_missing_file(tmp_path: Path):
    with pytest.raises(CorpusError, match="file not found"):
        prepare_csv(tmp_path / "nope.csv")


def test_csv_corpus_follows_links(tmp_path: Path):
    """A linked clip folder and a linked file are media like any other; a cycle is harmless."""
    disk = tmp_path / "disk2"
    disk.mkdir()
    (disk / "a.wav").write_bytes(b"x")
    (disk / "b.wav").write_bytes(b"x")
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "clips").symlink_to(disk, target_is_directory=True)
    (root / "b.wav").symlink_to(disk / "b.wav")
    (disk / "up").symlink_to(root, target_is_directory=True)
    (root / "corpus.csv").write_text("utterance_id,text,label,split,audio_path\n"
                                     "u1,Hi,joy,train,clips/a.wav\nu2,Yo,joy,dev,b.wav\n",
                                     encoding="utf-8")
    table, report = prepare_csv(root / "corpus.csv", name="mine")
    assert table["audio_path"].to_pylist() == ["clips/a.wav", "b.wav"]
    assert report.counts == {}

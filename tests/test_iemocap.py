from __future__ import annotations

from pathlib import Path

import pytest

from extractors.corpora import CorpusError
from extractors.corpora.iemocap import prepare_iemocap, session

# (utterance id, start, end, code, text)
DIALOG = [
    ("F000", 6.2901, 8.2357, "neu", "Excuse me."),
    ("M000", 8.9, 10.1, "hap", "Yeah, hi!"),
    ("F001", 10.5, 12.0, "exc", "Is there a problem?"),
    ("M001", 12.2, 14.0, "xxx", "Mm."),
    ("F002", 14.1, 16.0, "fru", "I've been waiting for an hour."),
    ("M002", 16.5, 18.0, "sur", "Really?"),
    ("F003", 18.2, 20.0, "ang", "This is absurd."),
    ("M003", 20.1, 22.0, "sad", "I'm sorry."),
]


def write_dialog(root: Path, session: int, dialog: str, with_wav: bool = True) -> None:
    base = root / f"Session{session}"
    evaluation = base / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
    transcript = base / "dialog" / "transcriptions" / f"{dialog}.txt"
    evaluation.parent.mkdir(parents=True, exist_ok=True)
    transcript.parent.mkdir(parents=True, exist_ok=True)
    eval_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    text_lines = []
    for suffix, start, end, code, text in reversed(DIALOG):  # file order must not matter
        utt = f"{dialog}_{suffix}"
        eval_lines += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]",
                       "C-E1:\tNeutral;\t()", ""]
        text_lines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}")
        wav = base / "sentences" / "wav" / dialog / f"{utt}.wav"
        if with_wav:
            wav.parent.mkdir(parents=True, exist_ok=True)
            wav.write_bytes(b"RIFF")
    evaluation.write_text("\n".join(eval_lines), encoding="utf-8")
    transcript.write_text("\n".join(text_lines + ["M: [LAUGHTER]"]), encoding="utf-8")
    video = base / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"avi")


@pytest.fixture
def iemocap_tree(tmp_path: Path) -> Path:
    write_dialog(tmp_path, 1, "Ses01F_impro01")
    for n in range(1, 6):
        write_dialog(tmp_path, 4, f"Ses04F_impro0{n}")
    write_dialog(tmp_path, 5, "Ses05M_script01_1", with_wav=False)
    return tmp_path


def test_iemocap_six_classes(iemocap_tree: Path):
    table, report = prepare_iemocap(iemocap_tree)
    rows = {r["utterance_id"]: r for r in table.to_pylist()}
    assert table.num_rows == 7 * 6  # 8 turns, xxx and sur dropped
    assert report.counts["dropped_label_xxx"] == 7 and report.counts["dropped_label_sur"] == 7
    first = rows["iemocap/Ses01F_impro01_F000"]
    assert first == {
        "utterance_id": "iemocap/Ses01F_impro01_F000", "corpus": "iemocap", "split": "train",
        "dialogue_id": "iemocap/Ses01F_impro01", "turn": 0, "speaker": "Ses01_F",
        "text": "Excuse me.", "label": "neutral",
        "audio_path": "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav",
        "video_path": "Session1/dialog/avi/DivX/Ses01F_impro01.avi",
        "start_s": 6.2901, "end_s": 8.2357, "source_start_s": None, "source_end_s": None,
    }
    assert rows["iemocap/Ses01F_impro01_M003"]["turn"] == 5  # ordered by start time
    assert rows["iemocap/Ses01F_impro01_M003"]["speaker"] == "Ses01_M"
    assert {r["label"] for r in rows.values()} == {
        "neutral", "happy", "excited", "frustrated", "angry", "sad"}
    splits = {r["dialogue_id"]: r["split"] for r in rows.values()}
    assert splits["iemocap/Ses04F_impro05"] == "dev"  # last 20 % of Session 4
    assert splits["iemocap/Ses04F_impro04"] == "train"
    assert splits["iemocap/Ses05M_script01_1"] == "test"
    assert report.counts["missing_audio"] == 6
    assert rows["iemocap/Ses05M_script01_1_F000"]["audio_path"] is None


def test_a_dialogues_session_is_that_of_both_its_speakers(iemocap_tree: Path):
    """Cross-validation folds IEMOCAP by session (fusion/cv.py): both actors of a session,
    every one of its dialogues."""
    table, _ = prepare_iemocap(iemocap_tree)
    assert session("iemocap/Ses01F_impro01") == "Ses01"
    pairs = {(session(r["dialogue_id"]), r["speaker"]) for r in table.to_pylist()}
    assert pairs == {(f"Ses0{s}", f"Ses0{s}_{g}") for s in (1, 4, 5) for g in "FM"}


def test_iemocap_four_classes_merge_excited(iemocap_tree: Path):
    table, report = prepare_iemocap(iemocap_tree, label_set="4", dev_fraction=0.4)
    labels = table["label"].to_pylist()
    assert sorted(set(labels)) == ["angry", "happy", "neutral", "sad"]
    assert labels.count("happy") == 2 * 7  # hap + exc
    assert report.counts["dropped_label_fru"] == 7
    dev = {r["dialogue_id"] for r in table.to_pylist() if r["split"] == "dev"}
    assert dev == {"iemocap/Ses04F_impro04", "iemocap/Ses04F_impro05"}


def test_iemocap_errors(tmp_path: Path, iemocap_tree: Path):
    with pytest.raises(CorpusError, match="no Session1..Session5 folders"):
        prepare_iemocap(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="label set '5' is unknown"):
        prepare_iemocap(iemocap_tree, label_set="5")


def test_iemocap_follows_a_linked_session_and_file(iemocap_tree: Path, tmp_path_factory):
    """A session folder and a wav file on another disk, reached through links; a cycle."""
    elsewhere = tmp_path_factory.mktemp("disk2")
    (iemocap_tree / "Session1").rename(elsewhere / "Session1")
    (iemocap_tree / "Session1").symlink_to(elsewhere / "Session1", target_is_directory=True)
    wav = iemocap_tree / "Session4/sentences/wav/Ses04F_impro01/Ses04F_impro01_F000.wav"
    wav.rename(elsewhere / "F000.wav")
    wav.symlink_to(elsewhere / "F000.wav")
    (iemocap_tree / "Session4" / "dialog" / "up").symlink_to(iemocap_tree / "Session4",
                                                             target_is_directory=True)
    table, report = prepare_iemocap(iemocap_tree)
    rows = {r["utterance_id"]: r for r in table.to_pylist()}
    assert table.num_rows == 7 * 6 and report.counts["missing_audio"] == 6  # as without links
    assert rows["iemocap/Ses01F_impro01_F000"]["audio_path"] == \
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    assert rows["iemocap/Ses04F_impro01_F000"]["audio_path"] is not None

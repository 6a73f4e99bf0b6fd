"""Evaluating the best checkpoint: metrics, predictions for DuckDB, confusion matrix plots.

The tensor cache must hold features made as those the checkpoint learnt from (its provenance,
``fusion.checkpoint.check_provenance``): otherwise evaluation stops and names what differs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from fusion.checkpoint import MODEL, check_provenance, load_checkpoint
from fusion.data import load_meta, load_split, size
from fusion.metrics import scores, weighted_f1
from fusion.model import model_from_checkpoint
from fusion.train import predict
from vocabulary.atomic import write_parquet, write_text


def load_model(model_dir: Path, device: torch.device = torch.device("cpu")):
    """The checkpoint's model, ready to predict, and the checkpoint itself."""
    path = Path(model_dir) / MODEL
    saved = load_checkpoint(path, device)
    try:
        return model_from_checkpoint(saved, device), saved
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def evaluate(tensor_dir: Path, model_dir: Path, split: str = "test",
             echo: Callable[[str], object] = print) -> dict:
    """Score ``split`` (dev when it is empty) and write metrics, predictions and plots, once
    the cache is known to hold features made as the model's were (or cannot be checked)."""
    meta = load_meta(tensor_dir)
    model, saved = load_model(model_dir)
    unchecked = check_provenance(saved, meta, Path(model_dir) / MODEL, Path(tensor_dir))
    if unchecked:
        echo(unchecked)
    data = load_split(tensor_dir, split, torch.device("cpu"))
    if not size(data):
        split, data = "dev", load_split(tensor_dir, "dev", torch.device("cpu"))
    probs, labels = predict(model, data, 128)
    predicted = probs.argmax(1)
    names = meta["labels"]
    result = {"split": split, **scores(labels, predicted, names),
              "best_epoch": saved["epoch"], "dev_weighted_f1": saved["dev"]["weighted_f1"],
              "coverage": coverage(data, list(meta["dims"]))}
    if (model_dir / "seeds.json").is_file():
        result["seeds"] = _seeds(tensor_dir, model_dir, split)
    write_text(json.dumps({k: v for k, v in result.items() if k != "confusion"}, indent=2),
               model_dir / "metrics.json")
    ids = meta["splits"][split]
    write_parquet(pa.table({
        "utterance_id": ids,
        "label": [names[i] for i in labels],
        "predicted": [names[i] for i in predicted],
        "probabilities": pa.array(list(probs.astype(np.float32)),
                                  pa.list_(pa.float32(), len(names))),
    }).replace_schema_metadata({"labels": json.dumps(names), "split": split}),
        model_dir / "predictions.parquet")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["actual", "predicted"])
    writer.writerows(zip((names[i] for i in labels), (names[i] for i in predicted),
                         strict=True))
    write_text(buffer.getvalue(), model_dir / "confusion.csv")
    return result


def coverage(data: dict, modalities: list[str]) -> dict:
    """How many utterances of a split have each modality's features, and how many have none."""
    present = [data[f"{m}_present"].bool() for m in modalities]
    anything = torch.stack(present).any(0) if present else torch.zeros(size(data), dtype=bool)
    return {"n": size(data), **{m: int(p.sum()) for m, p in zip(modalities, present,
                                                                    strict=True)},
            "none": int((~anything).sum())}


def _seeds(tensor_dir: Path, model_dir: Path, split: str) -> dict:
    """Every seed's dev and ``split`` weighted-F1, their mean and std, and the best-dev seed."""
    runs = json.loads((model_dir / "seeds.json").read_text(encoding="utf-8"))
    data = load_split(tensor_dir, split, torch.device("cpu"))
    dev, scored, n_classes = [], [], len(load_meta(tensor_dir)["labels"])
    for run in runs["runs"]:
        model, _ = load_model(model_dir / "seeds" / str(run["seed"]))
        probs, labels = predict(model, data, 128)
        dev.append(run["best_dev_weighted_f1"])
        scored.append(weighted_f1(labels, probs.argmax(1), n_classes))
    return {"n": len(runs["runs"]), "combine": runs.get("combine", "best"),
            "best_dev_seed": runs["best_seed"],
            "values": {"seed": [r["seed"] for r in runs["runs"]], "dev_weighted_f1": dev,
                       f"{split}_weighted_f1": scored},
            "dev_weighted_f1_mean": float(np.mean(dev)),
            "dev_weighted_f1_std": float(np.std(dev, ddof=1)),
            f"{split}_weighted_f1_mean": float(np.mean(scored)),
            f"{split}_weighted_f1_std": float(np.std(scored, ddof=1))}


def summary_rows(result: dict) -> list[dict]:
    """The scores as rows (measure, value): overall first, then F1 per class."""
    rows = [{"measure": f"{name} ({result['split']}, n={result['n']})", "value": result[key]}
            for key, name in (("weighted_f1", "weighted-F1"), ("accuracy", "accuracy"),
                              ("macro_f1", "macro-F1"))]
    return rows + [{"measure": f"F1 {label}", "value": f1}
                   for label, f1 in result["per_class_f1"].items()]

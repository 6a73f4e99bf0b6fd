"""MCN-CL against plain baselines on the real data in ../shared/data.

    python bench/realdata.py [--task meld-text|ravdess-audio|both] [--epochs N]

meld-text: MELD train/dev transcripts; the text extractor's sentence embeddings + logistic
regression (the reference: dev weighted-F1 50.4) versus MCN-CL on the token embeddings with
``model.modalities: [text]``, trained on train, selected and reported on dev.
ravdess-audio: RAVDESS speech, actors 01-10 train, 11-12 dev; eGeMAPSv02 functionals +
standardised logistic regression versus MCN-CL with ``model.modalities: [audio]``.
Features go through the real flows (cached under data/cache), the model through the real
tensor cache and training loop, with the params.yaml settings except those named here.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from mcncl.offline import go_offline

go_offline()

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from extractors.corpora import prepare_corpus  # noqa: E402
from flows.extract import run_extraction  # noqa: E402
from fusion.evaluate import evaluate  # noqa: E402
from fusion.tensors import build_tensors  # noqa: E402
from fusion.train import train  # noqa: E402
from mcncl.atomic import write_parquet  # noqa: E402
from mcncl.config import load_params  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TASKS = {  # name: (adapter, corpus folder, extractor, its column, modality in the model)
    "meld-text": ("meld", SHARED / "meld", "text", "embedding", "text"),
    "ravdess-audio": ("ravdess", SHARED / "ravdess_speech", "acoustic", "functionals", "audio"),
}


def baseline(manifest: Path, features: Path, column: str) -> tuple[float, float]:
    m = pq.read_table(manifest, columns=["utterance_id", "split", "label"]).to_pandas()
    f = pq.read_table(features, columns=["utterance_id", column]).to_pandas()
    data = m.merge(f, on="utterance_id")
    x = {s: np.stack(data[data.split == s][column].to_numpy()) for s in ("train", "dev")}
    y = {s: data[data.split == s]["label"].to_numpy() for s in ("train", "dev")}
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    predicted = clf.fit(x["train"], y["train"]).predict(x["dev"])
    return f1_score(y["dev"], predicted, average="weighted"), accuracy_score(y["dev"], predicted)


def run(task: str, epochs: int | None, work: Path) -> None:
    kind, root, extractor, column, modality = TASKS[task]
    params = load_params(REPO / "params.yaml")
    table, _ = prepare_corpus(kind, root, name=task.split("-")[0], dev_actors=(11, 12))
    manifest = work / f"{task}.parquet"
    write_parquet(table, manifest)
    extract = replace(params.extract, cache_dir=str(REPO / "data" / "cache"))
    run_extraction(extractor, manifest, work / task, extract, getattr(params, extractor))
    base_f1, base_acc = baseline(manifest, work / task / f"{extractor}.parquet", column)
    build_tensors(manifest, work / task, work / f"{task}-tensors", params.tensors)
    config = replace(params.train, epochs=epochs or params.train.epochs)
    train(work / f"{task}-tensors", work / f"{task}-model",
          replace(params.model, modalities=(modality,)), config)
    ours = evaluate(work / f"{task}-tensors", work / f"{task}-model", split="dev")
    print(f"| {task} | logistic regression | {100 * base_f1:.1f} | {100 * base_acc:.1f} |")
    print(f"| {task} | MCN-CL ({modality} only) | {100 * ours['weighted_f1']:.1f} | "
          f"{100 * ours['accuracy']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*TASKS, "both"], default="both")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("| task | model | dev weighted-F1 | dev accuracy |\n|---|---|---|---|")
        for task in TASKS if args.task == "both" else [args.task]:
            run(task, args.epochs, Path(tmp))


if __name__ == "__main__":
    main()

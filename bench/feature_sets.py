"""openSMILE feature sets compared on RAVDESS speech (actors 01-10 train, 11-12 dev), audio only.

    python bench/feature_sets.py [--sets eGeMAPSv02,ComParE_2016] [--seeds 13,14,15] [--epochs N]

For each set: the real extraction flow (cached under ``data/cache``), a standardised logistic
regression on the functionals, and MCN-CL with ``model.modalities: [acoustic]`` trained on train
and selected on dev, dev weighted-F1 and accuracy as medians over the seeds. The default in
``params.yaml`` is whichever set scores better here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from mcncl.offline import go_offline

go_offline()
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/realdata.py's baseline

from realdata import baseline  # noqa: E402

from extractors.corpora import prepare_corpus  # noqa: E402
from flows.extract import run_extraction  # noqa: E402
from fusion.evaluate import evaluate  # noqa: E402
from fusion.tensors import build_tensors  # noqa: E402
from fusion.train import train  # noqa: E402
from mcncl.config import load_params  # noqa: E402
from vocabulary.atomic import write_parquet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RAVDESS = REPO.parent / "shared" / "data" / "ravdess_speech"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="eGeMAPSv02,ComParE_2016")
    parser.add_argument("--seeds", default="13,14,15")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench" / "feature_sets")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    table, _ = prepare_corpus("ravdess", RAVDESS, name="ravdess", dev_actors=(11, 12))
    manifest = work / "ravdess.parquet"
    write_parquet(table, manifest)
    extract = replace(params.extract, cache_dir=str(REPO / "data" / "cache"))
    model = replace(params.model, modalities=("acoustic",))
    rows = []
    for name in args.sets.split(","):
        features = work / name
        run_extraction("acoustic", manifest, features, extract,
                       replace(params.acoustic, feature_set=name))
        lr_f1, _, lr_acc = baseline(manifest, features / "acoustic.parquet", "functionals")
        tensors = work / f"{name}-tensors"
        build_tensors(manifest, features, tensors, params.tensors)
        scores = []
        for seed in (int(s) for s in args.seeds.split(",")):
            config = replace(params.train, seed=seed, epochs=args.epochs or params.train.epochs)
            train(tensors, work / f"{name}-model-{seed}", model, config, echo=lambda *_: None)
            dev = evaluate(tensors, work / f"{name}-model-{seed}", split="dev")
            scores.append((dev["weighted_f1"], dev["accuracy"]))
            print(f"  {name} seed {seed}: dev weighted-F1 {100 * dev['weighted_f1']:.1f}",
                  flush=True)
        rows.append((name, lr_f1, lr_acc, statistics.median(s[0] for s in scores),
                     statistics.median(s[1] for s in scores)))
    print("\n| RAVDESS audio, dev actors 11-12 | LR weighted-F1 | LR accuracy | MCN-CL weighted-F1 "
          "(median) | MCN-CL accuracy |\n|---|---|---|---|---|")
    for name, lr_f1, lr_acc, f1, acc in rows:
        print(f"| {name} | {100 * lr_f1:.1f} | {100 * lr_acc:.1f} | {100 * f1:.1f} | "
              f"{100 * acc:.1f} |")


if __name__ == "__main__":
    main()

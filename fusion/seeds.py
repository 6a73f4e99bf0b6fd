"""Several training seeds (``train.seeds``): keep the best on dev, or average them.

Each run lives in ``seeds/<seed>/`` (seeds ``seed``, ``seed + 1``, ...). ``train.combine:
best`` copies the best-dev run's ``model.safetensors`` up; ``average`` writes a seed ensemble
there instead: one checkpoint holding every run's weights, which predicts the mean of their
class probabilities, and whose dev scores are the ensemble's own (no run is chosen, so the dev
figure is not the maximum of N draws). It costs N trainings and N forward passes per
prediction. Either way the best run's learning curve is copied up and ``seeds.json`` lists
every run (evaluate scores each of them too).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import torch

from fusion.checkpoint import MODEL, load_checkpoint, save_checkpoint
from fusion.config import ModelConfig, TrainConfig
from fusion.data import load_split
from fusion.metrics import scores
from fusion.model import model_from_checkpoint
from fusion.train import predict, train
from vocabulary.atomic import write_text

COMBINE = ("best", "average")


def train_seeds(tensor_dir: Path, out_dir: Path, model_config: ModelConfig,
                config: TrainConfig, resume: bool = False, echo=print) -> dict:
    """Train ``config.seeds`` runs and combine them as ``config.combine`` says; return the
    kept model's scores and every run's (``seeds``)."""
    if config.combine not in COMBINE:
        raise ValueError(f"train.combine {config.combine!r} is unknown; use best (keep the "
                         "best seed on dev) or average (a seed ensemble).")
    if config.seeds <= 1:
        (out_dir / "seeds.json").unlink(missing_ok=True)
        return train(tensor_dir, out_dir, model_config, config, resume, echo)
    runs = []
    for i in range(config.seeds):
        seed = config.seed + i
        echo(f"seed {seed} ({i + 1} of {config.seeds})")
        runs.append(train(tensor_dir, out_dir / "seeds" / str(seed), model_config,
                          replace(config, seed=seed), resume, echo))
    best = max(runs, key=lambda r: r["best_dev_weighted_f1"])
    kept = {**best, "seeds": runs}
    ensemble = None
    if config.combine == "average":
        ensemble = seed_ensemble(tensor_dir, [out_dir / "seeds" / str(r["seed"]) for r in runs],
                                 config)
        kept.update(best_dev_weighted_f1=ensemble["dev"]["weighted_f1"], seed=None)
        echo(f"seed ensemble of {len(runs)}: dev weighted-F1 "
             f"{ensemble['dev']['weighted_f1']:.4f}")
    if int(os.environ.get("RANK", "0")) == 0:
        for name in ("train_log.csv", "train_times.csv"):
            shutil.copyfile(out_dir / "seeds" / str(best["seed"]) / name, out_dir / name)
        if ensemble is None:
            shutil.copyfile(out_dir / "seeds" / str(best["seed"]) / MODEL, out_dir / MODEL)
        else:
            save_checkpoint(ensemble, out_dir / MODEL)
        write_text(json.dumps({"best_seed": best["seed"], "combine": config.combine,
                               "runs": runs}, indent=2), out_dir / "seeds.json")
    return kept


def trained_as(result: dict) -> str:
    """How ``train_seeds``'s kept model was trained, for the stage's closing line."""
    if result["seed"] is None:
        return f"a seed ensemble of {len(result['seeds'])} runs"
    return f"{result['epochs']} epochs"


def seed_ensemble(tensor_dir: Path, run_dirs: list[Path], config: TrainConfig) -> dict:
    """One checkpoint of the runs' best weights (``members``) with the ensemble's dev scores;
    ``epoch`` lists each run's best epoch. The rest (settings, labels, the features'
    provenance) is the first run's: every run learnt from the same tensor cache."""
    saved = [load_checkpoint(d / MODEL) for d in run_dirs]
    ensemble = {k: v for k, v in saved[0].items() if k != "state_dict"}
    ensemble.update(members=[s["state_dict"] for s in saved], train_config=asdict(config),
                    epoch=[s["epoch"] for s in saved])
    probs, labels = predict(model_from_checkpoint(ensemble),
                            load_split(tensor_dir, "dev", torch.device("cpu")), 128)
    ensemble["dev"] = scores(labels, probs.argmax(1), ensemble["meta"]["labels"])
    return ensemble

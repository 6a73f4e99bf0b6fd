"""The ablations of the paper's claims, as named sets of params overrides.

Each runs as a DVC experiment (``dvc exp run -n <name> -S <key>=<value> ...``) or in-process
on the current tensor cache (``mcncl ablations --run``), which prints one table.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from fusion.config import ModelConfig, TrainConfig
from fusion.evaluate import evaluate
from fusion.train import train

ABLATIONS: dict[str, dict[str, object]] = {
    "full": {},
    "text-only": {"model.modalities": ["text"]},
    "audio-only": {"model.modalities": ["audio"]},
    "visual-only": {"model.modalities": ["visual"]},
    "concat-fusion": {"model.fusion": "concat"},
    "no-contrastive": {"train.contrastive_weight": 0.0},
    "no-hard-negatives": {"train.hard_negatives": "none"},
}


def dvc_command(name: str) -> str:
    sets = " ".join(f"-S '{k}={_yaml(v)}'" for k, v in ABLATIONS[name].items())
    return f"dvc exp run -n {name} {sets}".rstrip()


def _yaml(value: object) -> str:
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)


def configs(name: str, model: ModelConfig, config: TrainConfig) -> tuple[ModelConfig,
                                                                          TrainConfig]:
    sections = {"model": {}, "train": {}}
    for key, value in ABLATIONS[name].items():
        section, field = key.split(".")
        sections[section][field] = tuple(value) if isinstance(value, list) else value
    return replace(model, **sections["model"]), replace(config, **sections["train"])


def run_all(tensor_dir: Path, model: ModelConfig, config: TrainConfig,
            echo=print) -> list[dict]:
    """Train and evaluate every ablation on ``tensor_dir``; return one row per ablation."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ABLATIONS:
            m, c = configs(name, model, config)
            present = [x for x in m.modalities if x in _built(tensor_dir)]
            if not present:
                echo(f"{name}: skipped, no {'/'.join(m.modalities)} features were built")
                continue
            out = Path(tmp) / name
            train(tensor_dir, out, m, c, echo=lambda *_: None)
            result = evaluate(tensor_dir, out)
            rows.append({"ablation": name, "split": result["split"],
                         "weighted_f1": result["weighted_f1"], "accuracy": result["accuracy"],
                         "macro_f1": result["macro_f1"]})
            echo(f"{name}: weighted-F1 {result['weighted_f1']:.4f}")
    return rows


def _built(tensor_dir: Path) -> set[str]:
    from fusion.data import load_meta

    return set(load_meta(tensor_dir)["dims"])

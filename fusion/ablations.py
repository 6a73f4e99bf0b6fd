"""The ablations of the paper's claims, as named sets of params overrides.

Each runs as a DVC experiment (``dvc exp run -n <name> -S <key>=<value> ...``) or in-process
on the current tensor cache (``mcncl ablations --run``), which prints one table of dev
scores: ablations are compared on dev only.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from fusion.checkpoint import MODEL, load_checkpoint
from fusion.config import ModelConfig, TrainConfig
from fusion.train import train

ABLATIONS: dict[str, dict[str, object]] = {
    "full": {},
    "text-only": {"model.modalities": ["text"]},
    "acoustic-only": {"model.modalities": ["acoustic"]},
    "facial-only": {"model.modalities": ["facial"]},
    "concat-fusion": {"model.fusion": "concat"},  # no cross-attention; all else the same
    "no-psa": {"model.pyramid_kernels": []},  # facial frames go straight to the projection
    "no-context": {"model.context": "none"},  # each utterance alone, as if no dialogue
    "contrastive": {"train.contrastive_weight": 0.1, "train.hard_negative_beta": 0.0},
    "contrastive-hard-negatives": {"train.contrastive_weight": 0.1},  # β: train.hard_negative_beta
}


def dvc_command(name: str) -> str:
    sets = " ".join(f"-S '{k}={_yaml(v)}'" for k, v in ABLATIONS[name].items())
    return f"dvc exp run -n {name} {sets}".rstrip()


def _yaml(value: object) -> str:
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)


def with_overrides(overrides: dict[str, object], **sections: object) -> dict[str, object]:
    """``sections`` (name → config dataclass) with ``{"section.field": value}`` applied."""
    changed: dict[str, dict] = {name: {} for name in sections}
    for key, value in overrides.items():
        section, field = key.split(".")
        if section not in sections:
            raise ValueError(f"{key}: only {', '.join(sections)} settings can be overridden here.")
        changed[section][field] = tuple(value) if isinstance(value, list) else value
    return {name: replace(config, **changed[name]) for name, config in sections.items()}


def configs(name: str, model: ModelConfig, config: TrainConfig) -> tuple[ModelConfig,
                                                                          TrainConfig]:
    chosen = with_overrides(ABLATIONS[name], model=model, train=config)
    return chosen["model"], chosen["train"]


def run_all(tensor_dir: Path, model: ModelConfig, config: TrainConfig,
            echo=print) -> list[dict]:
    """Train every ablation on ``tensor_dir`` and score it on dev; return one row each.

    Only dev decides between them: each row is the best dev checkpoint's scores (the median
    over ``train.seeds`` seeds when there are several). The held-out split is scored once,
    by ``mcncl evaluate``, for the configuration in params.yaml.
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ABLATIONS:
            m, c = configs(name, model, config)
            present = [x for x in m.modalities if x in _built(tensor_dir)]
            if not present:
                echo(f"{name}: skipped, no {'/'.join(m.modalities)} features were built")
                continue
            runs = []
            for i in range(max(1, c.seeds)):
                out = Path(tmp) / name / str(i)
                train(tensor_dir, out, m, replace(c, seed=c.seed + i, seeds=1),
                      echo=lambda *_: None)
                runs.append(load_checkpoint(out / MODEL)["dev"])
            dev = sorted(runs, key=lambda r: r["weighted_f1"])[(len(runs) - 1) // 2]
            rows.append({"ablation": name, "split": "dev", "seeds": len(runs),
                         "weighted_f1": dev["weighted_f1"], "accuracy": dev["accuracy"],
                         "macro_f1": dev["macro_f1"]})
            echo(f"{name}: dev weighted-F1 {dev['weighted_f1']:.4f}")
    return rows


def _built(tensor_dir: Path) -> set[str]:
    from fusion.data import load_meta

    return set(load_meta(tensor_dir)["dims"])

"""Every model configuration under ``torchrun --nproc_per_node 2`` (gloo, CPU) to completion.

One torchrun launch trains each configuration in turn (each ``train`` call starts and ends its
own process group); the same configurations then train in this process with the batch twice
as large. With dropout off, two ranks of batch b step exactly as one process of batch 2b would
(same rows per step, gradients averaged, contrastive views gathered across ranks), so rank 0's
checkpoint must score the dev split as the single-process run does: weighted-F1 within 0.05
(float summation order and the per-rank mean of the contrastive loss differ slightly), and
its dev class probabilities within 0.01 of each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion.config import ModelConfig, TrainConfig
from fusion.data import load_split
from fusion.evaluate import load_model
from fusion.train import predict, train
from tests.tensor_cache import make_tensor_cache

REPO = Path(__file__).resolve().parents[1]
BASE = ModelConfig(d_model=16, n_heads=2, n_layers=1, dropout=0.0)
CONFIGS = {
    "text-only": {"modalities": ("text",)},
    "acoustic-only": {"modalities": ("acoustic",)},
    "facial-only": {"modalities": ("facial",)},
    "concat": {"fusion": "concat"},
    "context": {"context": "past_future"},
    "full": {},
}
TRAIN = TrainConfig(epochs=2, batch_size=16, lr=5e-3, patience=5, num_threads=1,
                    contrastive_weight=0.1)  # the views are gathered across the ranks
TOLERANCE = 0.05
PROBABILITY_TOLERANCE = 0.01  # the same steps: dev probabilities agree this closely
SCRIPT = """
import json, os, sys
from dataclasses import replace
from pathlib import Path
from fusion.config import ModelConfig, TrainConfig
from tests.test_fusion_ddp import BASE, CONFIGS, TRAIN
from fusion.train import train
cache, out = Path(sys.argv[1]), Path(sys.argv[2])
for name, change in CONFIGS.items():
    result = train(cache, out / name, replace(BASE, **change), TRAIN, echo=lambda *_: None)
    rank = os.environ["RANK"]
    (out / name / f"result-{rank}.json").write_text(json.dumps(result))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ddp")
    cache = make_tensor_cache(root / "cache", sizes=(96, 32, 8))
    script = root / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29533", str(script), str(cache), str(root / "ddp")],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-6000:]
    ddp = {name: [json.loads((root / "ddp" / name / f"result-{rank}.json").read_text())
                  for rank in (0, 1)] for name in CONFIGS}
    single = {name: train(cache, root / "single" / name, replace(BASE, **change),
                          replace(TRAIN, batch_size=2 * TRAIN.batch_size), echo=lambda *_: None)
              for name, change in CONFIGS.items()}
    return {"root": root, "ddp": ddp, "single": single}


def test_every_configuration_runs_under_torchrun_and_matches_one_process(runs):
    dev = load_split(runs["root"] / "cache", "dev", torch.device("cpu"))
    for name, ranks in runs["ddp"].items():
        assert ranks[0] == ranks[1], name  # both ranks finished alike
        saved = runs["root"] / "ddp" / name
        assert (saved / "model.safetensors").is_file()
        log = (saved / "train_log.csv").read_text().splitlines()
        assert len(log) == 1 + TRAIN.epochs, name
        single = runs["single"][name]
        assert abs(ranks[0]["best_dev_weighted_f1"] - single["best_dev_weighted_f1"]) \
            <= TOLERANCE, (name, ranks[0], single)
        probs = [predict(load_model(root / name)[0], dev, 32)[0]
                 for root in (runs["root"] / "ddp", runs["root"] / "single")]
        gap = float(np.abs(probs[0] - probs[1]).max())
        assert gap <= PROBABILITY_TOLERANCE, (name, gap)

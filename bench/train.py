"""Training throughput: the real loop versus the model's bare forward + backward.

    python bench/train.py [--utterances 10000] [--epochs 2] [--device auto]
                          [--configs full,context] [--threads 0]

MELD-sized random data (10k train utterances; 40 text tokens x 384, 100 acoustic frames x 25
plus 88 functionals, 50 AU frames x 17; a fifth of each modality missing) is written as a
tensor cache. "Real loop": ``fusion.train.train`` (batching, losses, clipping, schedule,
dev evaluation of a twentieth as many utterances (500), checkpointing), seconds per epoch
from its log. "Bare": the same model, loss and optimizer stepping over batches sliced from
tensors already in memory, nothing else. Prints utterances per second of each and their ratio
(target >= 0.9), for the full model and with ``model.context`` (whole dialogues of 8 per
batch).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs without installing too

from fusion.config import ModelConfig, TrainConfig  # noqa: E402
from fusion.data import batches, load_split  # noqa: E402
from fusion.losses import total_loss  # noqa: E402
from fusion.model import build_model  # noqa: E402
from fusion.train import train  # noqa: E402
from fusion.training import pick_device  # noqa: E402

SHAPES = {"text": (40, 384), "acoustic": (100, 25), "facial": (50, 17)}
LABELS = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]


def write_cache(root: Path, n_train: int, n_dev: int = 500) -> None:
    rng = np.random.default_rng(0)
    meta = {"labels": LABELS, "dims": {m: s[1] for m, s in SHAPES.items()}, "splits": {},
            "normalisation": {"functionals": {"mean": [0.0] * 88, "std": [1.0] * 88}}}
    for split, n in (("train", n_train), ("dev", n_dev), ("test", 0)):
        arrays = {"label": rng.integers(0, len(LABELS), n), "dialogue": np.arange(n) // 8,
                  "turn": np.arange(n) % 8, "speaker": np.arange(n) % 6,
                  "functionals": rng.normal(size=(n, 88)).astype(np.float16)}
        for m, (length, width) in SHAPES.items():
            lengths = rng.integers(length // 4, length + 1, n)
            present = rng.random(n) > 0.2
            arrays[f"{m}_mask"] = (np.arange(length)[None] < lengths[:, None]) & present[:, None]
            arrays[f"{m}_present"] = present
            arrays[m] = rng.normal(size=(n, length, width)).astype(np.float16)
        save_file(arrays, str(root / f"{split}.safetensors"))
        meta["splits"][split] = [str(i) for i in range(n)]
    (root / "meta.json").write_text(json.dumps(meta))


def bare(root: Path, model_config: ModelConfig, config: TrainConfig) -> float:
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    meta = json.loads((root / "meta.json").read_text())
    model = build_model(meta, model_config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    data = load_split(root, "train", device)
    prepared = list(batches(data, config.batch_size, torch.Generator().manual_seed(0),
                            by_dialogue=model_config.context != "none"))
    start = time.perf_counter()
    for batch in prepared:
        loss = total_loss(*model(batch), batch["label"], None, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return len(data["label"]) / (time.perf_counter() - start)


def measure(root: Path, work: Path, model_config: ModelConfig, config: TrainConfig,
            n: int) -> tuple[float, float, float]:
    """Utterances per second of the real loop and of the bare loop, and seconds per epoch."""
    train(root, work, model_config, config, echo=lambda *_: None)
    log = (work / "train_times.csv").read_text().splitlines()[1:]
    seconds = statistics.median(float(line.split(",")[-1]) for line in log)
    bare_speed = statistics.median(bare(root, model_config, config)
                                   for _ in range(config.epochs))
    return n / seconds, bare_speed, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--configs", default="full,context", help="full and/or context")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    config = TrainConfig(epochs=args.epochs, patience=args.epochs, device=args.device,
                         num_threads=args.threads)
    device = pick_device(args.device)
    print(f"device {device}; {args.utterances} utterances; batch {config.batch_size}")
    print("| configuration | real loop utt/s | bare forward+backward utt/s | ratio | "
          "s per epoch (real) |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cache"
        root.mkdir()
        write_cache(root, args.utterances, max(50, args.utterances // 20))  # dev: 1/20
        for name in args.configs.split(","):
            model_config = ModelConfig(context="past_future" if name == "context" else "none")
            real, bare_speed, seconds = measure(root, Path(tmp) / name, model_config, config,
                                                args.utterances)
            print(f"| {name} | {real:.0f} | {bare_speed:.0f} | {real / bare_speed:.2f} | "
                  f"{seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()

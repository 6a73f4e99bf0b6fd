"""What dialogue context costs in training: seconds per epoch and peak memory, side by side.

    python bench/context_cost.py [--epochs 3] [--contexts none,past_future] [--turns 0,128]
                                 [--threads 2] [--work DIR]

Trains MCN-CL on MELD's text (train/dev transcripts in ../shared/data, the packaged MiniLM,
``model.modalities: [text]``; features from ``bench/realdata.py``'s folder, extracted once)
for ``--epochs`` epochs with each ``model.context``, each run in a fresh process, in turn, so
the runs share nothing. Prints the median seconds per epoch, its ratio to ``none`` and the
process's peak resident memory. ``--turns 128`` also reruns each on a copy of the same tensor
cache regrouped into dialogues of 128 turns (IEMOCAP's longest run past 100), where a batch
holds a whole dialogue whatever ``train.batch_size`` says: the worst case for memory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parents[1]


def regrouped(tensors: Path, turns: int, out: Path) -> Path:
    """A copy of the tensor cache ``tensors`` whose train and dev utterances are cut, in
    order, into dialogues of ``turns`` turns (two speakers taking turns)."""
    shutil.copytree(tensors, out)
    for split in ("train", "dev"):
        arrays = load_file(str(out / f"{split}.safetensors"))
        n = len(arrays["label"])
        arrays["dialogue"] = np.arange(n) // turns
        arrays["turn"], arrays["speaker"] = np.arange(n) % turns, np.arange(n) % 2
        save_file(arrays, str(out / f"{split}.safetensors"))
    return out


def one_run(tensors: Path, context: str, epochs: int, threads: int, out: Path) -> tuple:
    """Train in this (fresh) process: the seconds of each epoch and the peak RSS in MiB."""
    from fusion.config import ModelConfig, TrainConfig
    from fusion.train import train

    model = ModelConfig(modalities=("text",), context=context)
    config = TrainConfig(epochs=epochs, patience=epochs, num_threads=threads)
    train(tensors, out, model, config, echo=lambda *_: None)
    lines = (out / "train_times.csv").read_text().splitlines()[1:]
    seconds = [float(line.split(",")[1]) for line in lines]
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--contexts", default="none,past_future")
    parser.add_argument("--turns", default="0", help="0: MELD's own dialogues; N: regrouped")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench" / "realdata")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from realdata import held_out, prepare, sections, tensors_for

    from mcncl.config import load_params

    params = load_params(REPO / "params.yaml")
    manifest, features = prepare("meld-text", params, args.work, in_process=True)
    config = sections(params, "meld-text", {})["tensors"]
    tensors = tensors_for(held_out("meld-text", manifest), features, config, args.work)
    spawn = multiprocessing.get_context("spawn")
    print("| dialogues | model.context | seconds per epoch (median) | ratio to none | peak RSS "
          "MiB |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for turns in (int(t) for t in args.turns.split(",")):
            cache = tensors if not turns else regrouped(tensors, turns, Path(tmp) / f"t{turns}")
            base = None
            for context in args.contexts.split(","):
                out = Path(tmp) / f"{turns}-{context}"
                with spawn.Pool(1) as pool:
                    seconds, peak = pool.apply(one_run, (cache, context, args.epochs,
                                                         args.threads, out))
                median = statistics.median(seconds)
                base = median if context == "none" else base
                ratio = f"{median / base:.2f}" if base else ""
                print(f"| {'MELD' if not turns else f'{turns} turns'} | {context} | "
                      f"{median:.1f} | {ratio} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()

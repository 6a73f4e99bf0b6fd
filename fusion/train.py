"""Training MCN-CL: AdamW, warm-up + cosine, early stopping on dev weighted-F1, checkpoints.

Runs on CPU or CUDA (bf16 autocast there) and under ``torchrun`` (DistributedDataParallel:
gloo on CPU, NCCL on CUDA; each rank trains on its share of every epoch's batches, every rank
evaluates dev; rank 0 decides early stopping and the best checkpoint and tells the others, and
writes). Every rank takes the same number of steps; dropout is seeded per rank. Same params
and data give the same metrics on CPU. The schedule, seeding, device and best-epoch
bookkeeping come from the training toolkit (``fusion/training.py``).

:func:`train` is the loop; its steps are :func:`set_up` (once), then per epoch
:func:`train_epoch`, :func:`evaluate_dev` and :func:`save_epoch` (rank 0).
"""

from __future__ import annotations

import atexit
import csv
import functools
import io
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from fusion.checkpoint import LAST, MODEL, load_checkpoint, save_checkpoint
from fusion.config import ModelConfig, TrainConfig
from fusion.data import batches, epoch_plan, is_conversation, load_meta, load_split, size, take
from fusion.losses import total_loss
from fusion.metrics import scores
from fusion.model import MCNCL, build_model
from fusion.training import (
    adamw,
    improves,
    lr_factor,
    new_state,
    pick_device,
    record_epoch,
    seed_everything,
)
from vocabulary import MODALITIES
from vocabulary.atomic import write_text

# train_log.csv holds what training computes (the same on every rerun: it is tracked); the
# seconds per epoch go to train_times.csv beside it, which nothing tracks
LOG_COLUMNS = ("epoch", "train_loss", "dev_weighted_f1", "dev_accuracy", "lr")
TIME_COLUMNS = ("epoch", "seconds")


def predict(model: nn.Module, split: dict, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and labels of a whole split, in the split's order."""
    model.eval()
    probs = torch.zeros(size(split), model.n_classes)
    with torch.no_grad():
        for batch in batches(split, batch_size, by_dialogue=model.config.context != "none"):
            probs[batch["index"].cpu()] = torch.softmax(model(batch)[0].float(), dim=-1).cpu()
    return probs.numpy(), split["label"].cpu().numpy()


@dataclass
class Run:
    """One training run's parts, made once by :func:`set_up` and used by every epoch."""

    model: MCNCL
    net: nn.Module  # the model, or its DistributedDataParallel wrapper under several ranks
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    plans: list[list[torch.Tensor]]  # every epoch's batches (rows of train), fixed up front
    meta: dict
    train_split: dict[str, torch.Tensor]
    dev_split: dict[str, torch.Tensor]
    device: torch.device
    rank: int
    world: int


def train(tensor_dir: Path, out_dir: Path, model_config: ModelConfig, config: TrainConfig,
          resume: bool = False, echo=print) -> dict:
    """Train, keep the best checkpoint (``model.safetensors``) and the learning curve; return
    its scores."""
    run = set_up(tensor_dir, model_config, config)
    if model_config.context == "auto" and run.rank == 0:
        echo(f"model.context auto: {run.model.config.context} (" + (
            "a corpus of dialogues: each utterance is read with its dialogue)"
            if run.model.config.context != "none" else "single utterances: no dialogue)"))
    out_dir.mkdir(parents=True, exist_ok=True)
    state = new_state()
    if resume and (out_dir / LAST).is_file():
        state = _load_last(out_dir / LAST, run)
        echo(f"resuming after epoch {state['epoch']} (best dev weighted-F1 {state['best']:.4f})")
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        started = time.perf_counter()
        train_loss = train_epoch(run, run.plans[epoch - 1], config)
        dev = evaluate_dev(run, config.batch_size * 4)
        row = {"epoch": epoch, "train_loss": train_loss, "dev_weighted_f1": dev["weighted_f1"],
               "dev_accuracy": dev["accuracy"], "lr": run.schedule.get_last_lr()[0],
               "seconds": time.perf_counter() - started}
        improved = _from_rank_0(improves(state, dev["weighted_f1"]), run.world, run.device)
        record_epoch(state, row, dev["weighted_f1"], improved)
        if run.rank == 0:
            echo(f"epoch {epoch:3d}  loss {train_loss:.4f}  dev weighted-F1 "
                 f"{row['dev_weighted_f1']:.4f}  acc {row['dev_accuracy']:.4f}  "
                 f"{row['seconds']:.1f}s" + ("  *" if improved else ""))
            save_epoch(run, state, dev if improved else None, out_dir, config)
        if _from_rank_0(state["stale"] >= config.patience, run.world, run.device):
            break
    if run.world > 1:
        dist.barrier()
    return {"best_dev_weighted_f1": state["best"], "epochs": state["epoch"],
            "seed": config.seed}


# What model.context: auto means for a corpus of dialogues: the earlier turns (docs/model.md,
# conversations; the whole dialogue measured no better, and past runs live)
CONVERSATION_CONTEXT = "past"


def resolve_context(model_config: ModelConfig, train_split: dict) -> ModelConfig:
    """``model.context: auto`` made concrete: dialogue context when the train split is a
    conversation (a dialogue of more than one utterance), none for single utterances."""
    if model_config.context != "auto":
        return model_config
    return replace(model_config, context=CONVERSATION_CONTEXT
                   if is_conversation(train_split) else "none")


def set_up(tensor_dir: Path, model_config: ModelConfig, config: TrainConfig) -> Run:
    """Device and rank, seeds, the splits, the model, AdamW, and every epoch's batches with
    the learning-rate schedule over their real number of steps."""
    device, rank, world = _place(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    meta = load_meta(tensor_dir)
    train_split = load_split(tensor_dir, "train", device)
    dev_split = load_split(tensor_dir, "dev", device)
    if not size(train_split) or not size(dev_split):
        raise ValueError(f"{tensor_dir}: the train and dev splits must both have utterances "
                         f"(train {size(train_split)}, dev {size(dev_split)}).")
    model_config = resolve_context(model_config, train_split)
    model = build_model(meta, model_config).to(device)
    # A one-stream, concat or contrastive-free model leaves parameters out of some steps.
    net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) \
        if world > 1 else model
    torch.manual_seed(config.seed + rank)  # the same weights everywhere, dropout per rank
    optimizer = adamw(model.parameters(), config.weight_decay, config.lr)
    shuffles = torch.Generator().manual_seed(config.seed)
    plans = [epoch_plan(train_split, config.batch_size, shuffles, rank, world,
                        model.config.context != "none") for _ in range(config.epochs)]
    total = sum(len(plan) for plan in plans)  # the real batches: dialogues vary in length
    warmup = max(1, int(config.warmup_ratio * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(lr_factor, warmup=warmup, total=total))
    return Run(model=model, net=net, optimizer=optimizer, schedule=schedule, plans=plans,
               meta=meta, train_split=train_split, dev_split=dev_split,
               device=device, rank=rank, world=world)


def train_epoch(run: Run, plan: list[torch.Tensor], config: TrainConfig) -> float:
    """One optimiser step per batch of ``plan``; the mean training loss."""
    run.net.train()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=run.device.type == "cuda")
    losses = []
    for rows in plan:
        batch = take(run.train_split, rows)
        with autocast:
            logits, views, present = run.net(batch)
            loss = total_loss(logits, views, present, batch["label"], config,
                              ids=batch["index"])
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
        run.optimizer.step()
        run.schedule.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def evaluate_dev(run: Run, batch_size: int) -> dict:
    """The model's scores on the whole dev split (every rank scores all of it)."""
    probs, labels = predict(run.model, run.dev_split, batch_size)
    return scores(labels, probs.argmax(1), run.meta["labels"])


def save_epoch(run: Run, state: dict, best: dict | None, out_dir: Path,
               config: TrainConfig) -> None:
    """Rank 0's files after an epoch: the best checkpoint when the epoch improved on dev
    (``best``: its dev scores), ``last.safetensors`` for ``--resume`` and the learning curve."""
    if best is not None:
        save_checkpoint(_checkpoint(run.model, run.meta, run.model.config, config, state["epoch"],
                                    best), out_dir / MODEL)
    save_checkpoint({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                     "schedule": run.schedule.state_dict(), "state": state,
                     "rng": _rng_state()}, out_dir / LAST)
    _write_log(state["log"], out_dir)


def _place(name: str) -> tuple[torch.device, int, int]:
    """The device (``train.device``), this process's rank and the number of ranks; under
    ``torchrun`` the process group is started once per process (later seeds reuse it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(name)
    if world == 1:
        return device, 0, 1
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
    return device, int(os.environ["RANK"]), world


def _from_rank_0(flag: bool, world: int, device: torch.device) -> bool:
    """Rank 0's decision, the same on every rank (early stopping, which checkpoint is best)."""
    if world == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def _checkpoint(model, meta, model_config, config, epoch, dev) -> dict:
    """The best epoch's checkpoint; with the tensor cache's provenance (of the modalities the
    model reads) when the cache records it, so that evaluate and predict can check features."""
    kept = {k: meta[k] for k in ("labels", "dims", "normalisation", "tensors") if k in meta}
    saved = {"state_dict": model.state_dict(), "model_config": asdict(model_config),
             "train_config": asdict(config), "meta": kept, "epoch": epoch, "dev": dev}
    if "provenance" in meta:
        saved["provenance"] = {k: v for k, v in meta["provenance"].items()
                               if k not in MODALITIES or k in model_config.modalities}
    return saved


def _rng_state() -> dict:
    """The random streams training draws from (dropout), so a resumed run continues exactly
    as the uninterrupted one would have (the shuffles are planned from the seed)."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _load_last(path: Path, run: Run) -> dict:
    """Restore ``run`` from ``last.safetensors``; return the training state it holds."""
    saved = load_checkpoint(path, run.device)
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.schedule.load_state_dict(saved["schedule"])
    torch.set_rng_state(saved["rng"]["torch"].cpu())
    if saved["rng"]["cuda"]:
        torch.cuda.set_rng_state_all([state.cpu() for state in saved["rng"]["cuda"]])
    return saved["state"]


def _write_log(rows: list[dict], out_dir: Path) -> None:
    for name, columns in (("train_log.csv", LOG_COLUMNS), ("train_times.csv", TIME_COLUMNS)):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_text(buffer.getvalue(), out_dir / name)

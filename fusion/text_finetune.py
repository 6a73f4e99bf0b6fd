"""Fine-tune the text encoder on a corpus before extracting text features with it.

As COSMIC, EmoBERTa and TelME's text teacher do: the encoder (``text.model``) plus a linear
head learns to classify the corpus's utterances on the **train split only**; the epoch with
the best **dev** weighted-F1 is kept; the test split is never read. The inputs are built by
:func:`extractors.text.extractor.model_input` with ``text.context`` previous turns, exactly as
extraction builds them. The result is a local sentence-transformers folder with the head
(``classifier.safetensors``), published in ``data/models/<corpus>/text_encoder/`` as
``<content hash>/`` plus ``card.json`` (base model, settings, dev scores per epoch, date, and
the folder's name and files with their sizes); ``extract_text`` then encodes with it. With
``finetune.enabled: false`` the folder holds only a card saying so, and extraction uses
``text.model`` as before. The schedule, seeding, device and best-epoch bookkeeping are
MCN-CL's (``fusion/training.py``); the dev scores stay scikit-learn's, as the cards written so
far have them (``fusion/metrics.py`` can differ in the last bit when a class is absent).

Publishing is atomic (:func:`_publish`): the new model's folder is complete before the card,
written last in one atomic step, names it; older folders go after. A run killed at any point
leaves the previous card and its model, or no card at all; :func:`text_config_for` refuses a
card whose folder or files are missing, so extraction never quietly falls back to the base
model.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from extractors.base import weights_hash
from extractors.configs import FinetuneConfig, TextConfig
from extractors.corpora.manifest import manifest_labels
from extractors.text.extractor import (
    load_encoder,
    model_input,
    model_outputs,
    model_path,
    previous_turns,
)
from fusion.training import (
    adamw,
    improves,
    lr_factor,
    new_state,
    pick_device,
    record_epoch,
    seed_everything,
)
from vocabulary.atomic import write_text

CARD = "card.json"
HEAD = "classifier.safetensors"
PARTIAL = ".partial-"  # a model folder being written (a killed run's is removed next time)


class FinetuneError(ValueError):
    """The corpus or the encoder folder cannot be used for fine-tuning; the message says why."""


def read_card(encoder_dir: Path) -> dict:
    """The card of ``encoder_dir``: ``{"enabled": false}``, or a fine-tuned encoder's."""
    path = Path(encoder_dir) / CARD
    if not path.is_file():
        raise FinetuneError(f"{path}: not found; run `mcncl finetune text` (or `dvc repro "
                            "finetune_text`) first.")
    return json.loads(path.read_text(encoding="utf-8"))


def text_config_for(encoder_dir: Path, text: TextConfig) -> TextConfig:
    """``text`` pointed at the fine-tuned encoder in ``encoder_dir`` (the folder its card
    names) when there is one; an incomplete one is refused, never replaced by ``text.model``."""
    card = read_card(encoder_dir)
    if not card["enabled"]:
        return text
    if not card.get("folder") or not card.get("files"):
        raise FinetuneError(f"{Path(encoder_dir) / CARD} names no model folder and files (an "
                            "earlier version wrote it); rerun `mcncl finetune text` (or `dvc "
                            "repro finetune_text`).")
    folder = Path(encoder_dir) / card["folder"]
    if not folder.is_dir():
        raise FinetuneError(f"{folder}: the fine-tuned encoder that {Path(encoder_dir) / CARD} "
                            "names is missing; rerun `mcncl finetune text` (or `dvc repro "
                            "finetune_text`).")
    if missing := _incomplete(folder, card["files"]):
        raise FinetuneError(f"{folder}: the fine-tuned encoder is incomplete ({missing}); rerun "
                            "`mcncl finetune text` (or `dvc repro finetune_text`).")
    if card["context"] != text.context:
        raise FinetuneError(
            f"{encoder_dir} was fine-tuned with text.context = {card['context']} but params "
            f"say {text.context}; rerun `dvc repro finetune_text` (or restore the setting).")
    return replace(text, model=str(folder))


def applies(config: FinetuneConfig, corpus: str) -> bool:
    return config.enabled and (not config.corpora or corpus in config.corpora)


def finetune_text(manifest: Path, out: Path, config: FinetuneConfig, text: TextConfig,
                  echo: Callable[[str], object] = print) -> dict:
    """Fine-tune into ``out`` (or, when off for this corpus, record that); return the card."""
    out = Path(out)
    table = pq.read_table(manifest)
    corpus = table["corpus"][0].as_py() if table.num_rows else Path(manifest).stem
    if not applies(config, corpus):
        _publish(out, {"enabled": False})
        return read_card(out)
    import torch

    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    labels = manifest_labels(table)
    rows = table.select(["utterance_id", "split", "dialogue_id", "turn", "speaker", "text",
                         "label"]).to_pylist()
    for split in ("train", "dev"):
        if not any(r["split"] == split and (r["text"] or "").strip() for r in rows):
            raise FinetuneError(f"{manifest}: no {split} utterance with a transcript; "
                                "fine-tuning trains on train and selects on dev.")
    device = pick_device(config.device, "finetune.device", FinetuneError)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    base = model_path(text.model)
    model = load_encoder(base, str(device))
    model.max_seq_length = config.max_tokens
    data = _examples(rows, labels, text.context, model.tokenizer.sep_token or "|")
    head = torch.nn.Linear(model.get_embedding_dimension(), len(labels)).to(device)
    step = _training_step(model, head, config, len(data["train"]))
    state, best, best_state = new_state(), None, None
    rng = random.Random(config.seed)
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        model.train()
        head.train()
        losses = []
        batches = _batches(data["train"], config.batch_size, rng)
        for done, batch in enumerate(batches, 1):
            losses.append(step(batch, device))
            if done % max(1, len(batches) // 10) == 0 and done < len(batches):
                echo(f"finetune epoch {epoch}: {done}/{len(batches)} batches, loss "
                     f"{np.mean(losses):.4f}, {time.perf_counter() - start:.0f} s")
        seconds = time.perf_counter() - start
        dev = _dev_scores(model, head, data["dev"], config.batch_size, device)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **dev,
               "seconds": round(seconds, 1)}
        echo(f"finetune epoch {epoch}: loss {np.mean(losses):.4f}, dev weighted-F1 "
             f"{dev['dev_weighted_f1']:.4f}, accuracy {dev['dev_accuracy']:.4f} ({seconds:.0f} s)")
        improved = improves(state, dev["dev_weighted_f1"])
        record_epoch(state, row, dev["dev_weighted_f1"], improved)
        if improved:
            best = row
            best_state = [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
                          for m in (model, head)]
    model.load_state_dict(best_state[0])
    card = {
        "enabled": True, "base_model": text.model, "base_weights": weights_hash(base),
        "context": text.context, "max_tokens": config.max_tokens, "labels": labels,
        "params": asdict(config), "best_epoch": best["epoch"],
        "dev_weighted_f1": best["dev_weighted_f1"], "dev_accuracy": best["dev_accuracy"],
        "epochs": state["log"], "train_utterances": len(data["train"]),
        "dev_utterances": len(data["dev"]), "device": str(device), "started": started_at,
        "versions": {p: importlib.metadata.version(p) for p in ("torch",
                                                                 "sentence-transformers")},
    }

    def save(folder: Path) -> None:
        from safetensors.torch import save_file

        model.save(str(folder))
        save_file(best_state[1], str(folder / HEAD))

    _publish(out, card, save)
    return read_card(out)


def _examples(rows: list[dict], labels: list[str], context: int,
              separator: str) -> dict[str, list[tuple[str, int]]]:
    """(encoder input, label index) of every train and dev utterance with a transcript."""
    earlier = previous_turns(rows, context)
    return {split: [(model_input(r["text"], r["speaker"] or "", earlier.get(r["utterance_id"], ()),
                                 context, separator), labels.index(r["label"]))
                    for r in rows if r["split"] == split and (r["text"] or "").strip()]
            for split in ("train", "dev")}


def _training_step(model, head, config: FinetuneConfig, n_train: int) -> Callable:
    """One optimisation step on a batch (AdamW, clipped gradients, :func:`lr_factor`)."""
    import torch

    optimizer = adamw([{"params": model.parameters(), "lr": config.lr},
                       {"params": head.parameters(), "lr": config.head_lr}], config.weight_decay)
    total = math.ceil(n_train / config.batch_size) * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, int(config.warmup_ratio * total), total, decay="linear"))
    parameters = [*model.parameters(), *head.parameters()]

    def step(batch: list[tuple[str, int]], device) -> float:
        with torch.enable_grad():  # whatever the caller's grad mode (a long-lived process)
            logits = head(_embed(model, [x for x, _ in batch]))
            target = torch.tensor([y for _, y in batch], device=device)
            loss = torch.nn.functional.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        return loss.item()

    return step


def _embed(model, texts: list[str]):
    """The sentence embeddings the head reads: unit length times sqrt(dim), so that entries are
    of order one whether or not the model normalises its output (MiniLM does; a linear head on
    unit vectors starts with tiny logits and passes tiny gradients back to the encoder: one
    MELD epoch that way gave a dev weighted-F1 of 47.0)."""
    import torch

    embedding = model_outputs(model, texts)["sentence_embedding"]
    return torch.nn.functional.normalize(embedding, dim=-1) * embedding.shape[-1] ** 0.5


def _dev_scores(model, head, examples: list, batch_size: int, device) -> dict:
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    model.eval()
    head.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    predicted = np.zeros(len(examples), np.int64)
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            chosen = order[i:i + batch_size]
            logits = head(_embed(model, [examples[j][0] for j in chosen]))
            predicted[chosen] = logits.argmax(dim=-1).cpu().numpy()
    truth = [y for _, y in examples]
    return {"dev_weighted_f1": float(f1_score(truth, predicted, average="weighted")),
            "dev_accuracy": float(accuracy_score(truth, predicted))}


def _batches(examples: list, batch_size: int, rng: random.Random) -> list[list]:
    """Shuffled batches of like-length inputs (less padding): shuffle, sort within pools of
    50 batches by length, cut, shuffle the batches."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i:i + pool], key=lambda j: len(examples[j][0]))
        batches += [[examples[j] for j in chunk[k:k + batch_size]]
                    for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _publish(out: Path, card: dict, fill: Callable[[Path], None] | None = None) -> None:
    """Publish ``card`` in ``out`` and, with ``fill``, the model it fills a folder with, so
    that a run killed at any point leaves either the previous card and everything it names,
    or the new ones: the model is written to a partial folder inside ``out`` and renamed to
    its content hash; then the card, naming that folder and its files, is written in one
    atomic step; then everything else in ``out`` (older models, partial folders) goes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fill is not None:
        partial = Path(tempfile.mkdtemp(prefix=PARTIAL, dir=out))
        try:
            fill(partial)
            partial.chmod(0o755)
            files = _files(partial)
            name = weights_hash(str(partial))
            if (out / name).is_dir() and not _incomplete(out / name, files):
                shutil.rmtree(partial)  # the very same model, published before
            else:
                shutil.rmtree(out / name, ignore_errors=True)
                partial.rename(out / name)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        card = {**card, "folder": name, "files": files}
    write_text(json.dumps(card, indent=2) + "\n", out / CARD)
    for entry in out.iterdir():
        if entry.name not in (CARD, card.get("folder")):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (relative name → size in bytes)."""
    return {str(p.relative_to(folder)): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _incomplete(folder: Path, files: dict[str, int]) -> str:
    """What of ``files`` (name → size) ``folder`` lacks or holds at another size; empty when
    nothing."""
    wrong = [name for name, size in files.items()
             if not (folder / name).is_file() or (folder / name).stat().st_size != size]
    return "" if not wrong else f"{len(wrong)} of {len(files)} files missing or cut short: " \
        + ", ".join(wrong[:3]) + (", ..." if len(wrong) > 3 else "")

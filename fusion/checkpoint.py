"""Checkpoints without pickle: tensors in a safetensors file, everything else as JSON in its header.

A checkpoint pulled from a shared DVC remote is data, never code: loading reads tensors and
JSON and nothing else. Any nested structure of dicts, lists, numbers, strings and tensors
round-trips (a model's state dict, an optimiser's, random-number states, the training state).
The pickled ``model.pt`` of earlier versions is never unpickled by training or evaluation;
``python -m fusion.checkpoint <model.pt>`` converts one with torch's restricted (weights-only)
unpickler, which refuses anything but tensors and plain containers. A checkpoint from before
the modalities were renamed (audio → acoustic, visual → facial) is read in today's names, and
one that records settings deleted since (``fusion.config.DELETED``) is read without them.

A trained checkpoint carries its ``provenance`` (``fusion.tensors.feature_provenance``: how
the features it learnt from were made); :func:`check_provenance` refuses a tensor cache made
differently and names the settings that differ (:func:`provenance_diff`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from fusion.config import DELETED, RENAMED, renamed, without_deleted_tensors
from vocabulary.atomic import atomic_path

MODEL = "model.safetensors"  # the best epoch: weights, configs, labels, statistics, dev scores
LAST = "last.safetensors"  # the last finished epoch, for --resume (scratch, git-ignored)
OLD_MODEL = "model.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged or of the old pickled kind."""


class ProvenanceError(CheckpointError):
    """The features at hand were made differently from those the checkpoint learnt from."""


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """Write ``obj`` atomically: its tensors to the file's body, the rest to its header."""
    tensors: dict[str, torch.Tensor] = {}
    layout = _split(obj, "", tensors)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"layout": json.dumps(layout)})


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The structure ``save_checkpoint`` wrote, its tensors on ``device``."""
    path = Path(path)
    if not path.is_file():
        old = path.with_name(OLD_MODEL)
        if path.name == MODEL and old.is_file():
            raise CheckpointError(
                f"{old}: a pickled checkpoint of an earlier version, which is never loaded "
                f"(unpickling can run code); retrain, or convert it with `python -m "
                f"fusion.checkpoint {old}`.")
        raise FileNotFoundError(f"{path}: no trained model; run `mcncl train` "
                                "(DVC stage train) first.")
    try:
        with safe_open(str(path), "pt", device=str(device)) as f:
            layout = json.loads((f.metadata() or {})["layout"])
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a checkpoint this version wrote ({exc}); "
                              "retrain to replace it.") from exc
    return _without_deleted(_current_names(_join(layout, tensors)))


def convert_pickle(old: Path) -> Path:
    """An earlier version's ``model.pt`` as ``model.safetensors`` beside it (weights only)."""
    try:
        saved = torch.load(old, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler met something that is not data
        raise CheckpointError(f"{old}: refused, it holds more than tensors and plain data "
                              f"({type(exc).__name__}); retrain instead.") from exc
    new = Path(old).with_name(MODEL)
    save_checkpoint(saved, new)
    return new


def provenance_diff(trained: dict, current: dict) -> dict[str, tuple[Any, Any]]:
    """What differs between two provenance dicts, by dotted name (``acoustic.config.
    feature_set``) → (trained, current); a key one side lacks is None on that side."""
    differ: dict[str, tuple[Any, Any]] = {}
    for key in dict.fromkeys([*trained, *current]):
        a, b = trained.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differ.update({f"{key}.{k}": v for k, v in provenance_diff(a, b).items()})
        elif a != b:
            differ[key] = (a, b)
    return differ


def describe_diff(differ: dict[str, tuple[Any, Any]]) -> str:
    """``acoustic.config.feature_set (eGeMAPSv02 → ComParE_2016), labels``: each name, with
    both values when they are short; a config hash is left out when a setting is named."""
    shown = [k for k in differ if not (k.endswith(".config_hash") and any(
        n.startswith(k.removesuffix("config_hash") + "config.") for n in differ))]
    return ", ".join(f"{k} ({_short(differ[k][0])} → {_short(differ[k][1])})"
                     if all(_short(v) for v in differ[k]) else k for k in shown)


def _short(value: Any) -> str:
    """``value`` as a few characters, or empty when it is too long to show in a sentence."""
    text = "none" if value is None else str(value)
    return text if isinstance(value, str | int | float | None) and len(text) <= 40 else ""


def check_provenance(saved: dict, meta: dict, checkpoint: Path, tensor_dir: Path) -> str | None:
    """Refuse a tensor cache whose features were made differently from those the checkpoint
    learnt from (extractor settings or code, tensor settings, labels), for the modalities it
    reads. Returns a line to show when that cannot be checked (a checkpoint from before
    checkpoints recorded it), else None."""
    trained = saved.get("provenance")
    if trained is None:
        return (f"{checkpoint} does not record the features it was trained on (an earlier "
                f"version wrote it), so they cannot be checked against {tensor_dir}; retrain "
                "to record them.")
    current = meta.get("provenance")
    if current is None:
        raise ProvenanceError(f"{Path(tensor_dir) / 'meta.json'} does not record how its "
                              "features were made (an earlier version built it); rebuild it "
                              "with `mcncl tensors` (or `dvc repro`).")
    differ = provenance_diff(trained, {k: current.get(k) for k in trained})
    if differ:
        raise ProvenanceError(f"{checkpoint} was trained on features made differently from "
                              f"{tensor_dir}: {describe_diff(differ)}; run `dvc repro` to "
                              "retrain.")
    return None


def _current_names(saved: Any) -> Any:
    """A training checkpoint with its modalities named as today (``fusion.config.RENAMED``):
    the model's settings, the tensor metadata, the weights (``model.safetensors``'s state_dict,
    ``last.safetensors``'s model); anything else as it is."""
    if not isinstance(saved, dict):
        return saved
    meta = saved.get("meta") or {}
    keyed = [(saved, "state_dict"), (saved, "model"), (meta, "dims"), (meta, "normalisation"),
             (meta, "tensors")]
    for part, name in keyed:
        if isinstance(part.get(name), dict):
            part[name] = {renamed(k): v for k, v in part[name].items()}
    for part, name in ((saved.get("model_config") or {}, "modalities"),
                       (meta.get("tensors") or {}, "standardise")):
        if isinstance(part.get(name), list):
            part[name] = [RENAMED.get(m, m) for m in part[name]]
    return saved


def _without_deleted(saved: Any) -> Any:
    """A checkpoint without the settings deleted since it was written (``fusion.config.
    DELETED``) and without the projection head's weights (``heads.*``, from
    ``model.projection_dim``), which only made contrastive views: it predicts as before."""
    if not isinstance(saved, dict):
        return saved
    for section in ("model", "train"):
        config = saved.get(f"{section}_config")
        if isinstance(config, dict):
            for key in DELETED[section]:
                config.pop(key, None)
    without_deleted_tensors(saved)  # its provenance
    if isinstance(saved.get("meta"), dict):
        without_deleted_tensors(saved["meta"])
    for states in (saved.get("members") or [], [saved.get("state_dict"), saved.get("model")]):
        for state in states:
            for name in [n for n in state or {} if n.startswith("heads.")]:
                del state[name]
    return saved


def _split(obj: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``obj`` as JSON, each tensor replaced by a reference to its entry in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        tensors[name] = obj.detach().cpu().contiguous().clone()  # no shared storage in the file
        return {"tensor": name}
    if isinstance(obj, dict):  # keys kept with their type (an optimiser's state has int keys)
        return {"items": [[k, _split(v, f"{name}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return {"list": [_split(v, f"{name}.{i}", tensors) for i, v in enumerate(obj)]}
    return {"value": obj}


def _join(layout: dict, tensors: dict[str, torch.Tensor]) -> Any:
    if "tensor" in layout:
        return tensors[layout["tensor"]]
    if "items" in layout:
        return {k: _join(v, tensors) for k, v in layout["items"]}
    if "list" in layout:
        return [_join(v, tensors) for v in layout["list"]]
    return layout["value"]


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(f"{argument} → {convert_pickle(Path(argument))}")

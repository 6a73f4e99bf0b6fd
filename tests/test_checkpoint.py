"""Checkpoints are data, never code: safetensors + JSON, and old pickles are refused."""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion.checkpoint import CheckpointError, convert_pickle, load_checkpoint, save_checkpoint
from fusion.config import RENAMED, ModelConfig, TensorConfig, TrainConfig
from fusion.data import load_meta, load_split
from fusion.evaluate import load_model
from fusion.model import build_model
from fusion.train import _checkpoint, predict
from tests.tensor_cache import make_tensor_cache


class RunsCode:
    """Unpickling this runs a shell command: what a crafted model.pt would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_nested_state_round_trips(tmp_path: Path):
    state = {"state_dict": {"w": torch.randn(3, 4), "b": torch.zeros(4, dtype=torch.float16)},
             "optimizer": {"state": {0: {"step": torch.tensor(7.0)}},
                           "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]},
             "rng": torch.get_rng_state(), "epoch": 3, "best": float("-inf"), "queue": None,
             "labels": ["anger", "joy"]}
    save_checkpoint(state, tmp_path / "model.safetensors")
    back = load_checkpoint(tmp_path / "model.safetensors")
    assert torch.equal(back["state_dict"]["w"], state["state_dict"]["w"])
    assert back["state_dict"]["b"].dtype == torch.float16
    assert list(back["optimizer"]["state"]) == [0]  # int keys stay ints
    assert back["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.999]
    assert torch.equal(back["rng"], state["rng"])
    assert (back["epoch"], back["best"], back["queue"], back["labels"]) == \
        (3, float("-inf"), None, ["anger", "joy"])


def test_a_crafted_pickle_named_model_pt_is_never_unpickled(tmp_path: Path):
    marker = tmp_path / "code-ran"
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"state_dict": RunsCode(marker)}))
    with pytest.raises(CheckpointError, match=r"model\.pt: a pickled checkpoint .*retrain, "
                       r"or convert it with `python -m fusion.checkpoint .*model\.pt`"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="refused, it holds more than tensors"):
        convert_pickle(tmp_path / "model.pt")
    assert not marker.exists()
    assert not (tmp_path / "model.safetensors").exists()


def test_an_old_checkpoint_converts_and_a_damaged_one_is_named(tmp_path: Path):
    old = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 2,
           "dev": {"weighted_f1": 0.5}}
    torch.save(old, tmp_path / "model.pt")
    converted = load_checkpoint(convert_pickle(tmp_path / "model.pt"))
    assert torch.equal(converted["state_dict"]["w"], old["state_dict"]["w"])
    assert converted["dev"] == {"weighted_f1": 0.5}
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(CheckpointError, match="not a checkpoint this version wrote"):
        load_checkpoint(tmp_path / "model.safetensors")


def earlier_names(obj):
    """``obj`` as the fusion stages named things before: audio for acoustic, visual for facial."""
    if isinstance(obj, dict):
        return {earlier_names(k): earlier_names(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [earlier_names(v) for v in obj]
    if isinstance(obj, str):
        old = {new: old for old, new in RENAMED.items()}
        return re.sub(rf"(?<![a-z])({'|'.join(old)})(?![a-z])", lambda m: old[m[1]], obj)
    return obj


def test_a_checkpoint_of_the_earlier_modality_names_loads_and_predicts(tmp_path: Path):
    cache = make_tensor_cache(tmp_path / "cache")
    meta = {**load_meta(cache), "tensors": asdict(TensorConfig(max_facial_frames=10))}
    meta["normalisation"]["acoustic"] = {"mean": [0.0] * 6, "std": [1.0] * 6}
    config = ModelConfig(d_model=16, n_heads=2, n_layers=1, context="none")
    torch.manual_seed(0)
    model = build_model(meta, config).eval()
    old = earlier_names(_checkpoint(model, meta, config, TrainConfig(), 1, {}))
    assert old["model_config"]["modalities"] == ["text", "audio", "visual"]  # as written then
    assert "encoders.audio.extra.weight" in old["state_dict"]
    assert "max_visual_frames" in old["meta"]["tensors"]
    save_checkpoint(old, tmp_path / "m" / "model.safetensors")
    loaded, saved = load_model(tmp_path / "m")
    assert saved["model_config"]["modalities"] == ["text", "acoustic", "facial"]
    assert list(saved["meta"]["dims"]) == ["text", "acoustic", "facial"]
    assert set(saved["meta"]["normalisation"]) == {"functionals", "acoustic"}
    assert saved["meta"]["tensors"] == json.loads(json.dumps(meta["tensors"]))  # as written now
    dev = load_split(cache, "dev", torch.device("cpu"))
    np.testing.assert_array_equal(predict(loaded, dev, 8)[0], predict(model, dev, 8)[0])


def test_a_tensor_cache_of_the_earlier_modality_names_is_refused(tmp_path: Path):
    cache = make_tensor_cache(tmp_path / "cache")
    meta = json.loads((cache / "meta.json").read_text())
    (cache / "meta.json").write_text(json.dumps(earlier_names(meta)))
    with pytest.raises(ValueError, match=r"meta.json: a tensor cache of an earlier version "
                       r"\(modalities audio, visual\); rebuild it with `mcncl tensors`"):
        load_meta(cache)


def test_a_checkpoint_of_earlier_layers_is_refused_in_one_sentence(tmp_path: Path):
    """A model saved before a layer changed shape (the PSA before EPSANet's) says to retrain."""
    meta = load_meta(make_tensor_cache(tmp_path / "cache"))
    config = ModelConfig(d_model=16, n_heads=2, n_layers=1, context="none")
    saved = _checkpoint(build_model(meta, config), meta, config, TrainConfig(), 1, {})
    state = saved["state_dict"]
    name = next(k for k in state if k.endswith(".weight") and state[k].dim() == 2)
    state[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])
    save_checkpoint(saved, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ValueError, match=r"m/model.safetensors: the checkpoint holds weights of "
                       r"an earlier version of MCN-CL's layers; retrain it"):
        load_model(tmp_path / "m")

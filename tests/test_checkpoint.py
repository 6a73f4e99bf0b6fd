"""Checkpoints are data, never code: safetensors + JSON, and old pickles are refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from fusion.checkpoint import CheckpointError, convert_pickle, load_checkpoint, save_checkpoint
from fusion.evaluate import load_model


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

"""``corpora.<name>.portable``: torch's maths pinned to one code path before torch loads, so the
demo's text features and model are the same bytes on any x86-64 CPU (issue 27, item 7). That
they are is measured by ``bench/cpu_families.py`` (it needs QEMU); the pipeline test compares
the demo's text features with the committed lock byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from extractors.configs import TextConfig
from extractors.text import TextExtractor
from vocabulary.portable import PINNED, pin_maths

PARAMS = """corpora:
  demo: {kind: meld, root: data/demo, portable: true}
  mine: {kind: meld, root: data/mine}
"""
# which corpus's settings a command takes, then torch's kernels and the environment it sees
PROBE = ("import os, sys; from mcncl import cli; from mcncl.config import load_params; "
         "cli._corpus(load_params(sys.argv[1]), sys.argv[2]); import torch; "
         "print(torch.backends.cpu.get_cpu_capability(), os.environ.get('MKL_CBWR'))")


def _python(code: str, *args: str, pinned: bool = False) -> str:
    """What a fresh interpreter running ``code`` prints, started without the pins (or with)."""
    env = {k: v for k, v in os.environ.items() if k not in PINNED} | (PINNED if pinned else {})
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_portable_corpus_runs_torch_on_avx2_kernels_and_mkl_compatible(tmp_path: Path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    assert _python(PROBE, str(params), "demo") == "AVX2 COMPATIBLE"
    capability, mkl = _python(PROBE, str(params), "mine").split()
    assert mkl == "None"  # another corpus keeps torch's fastest kernels for this CPU
    assert capability in {"AVX2", "AVX512"}


def test_pinning_after_torch_loaded_is_refused(monkeypatch):
    import torch  # noqa: F401  (loaded by this suite anyway)

    for key in PINNED:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="before torch is imported"):
        pin_maths(True)
    pin_maths(False)  # a corpus that is not portable changes nothing
    assert not any(key in os.environ for key in PINNED)


def test_pinned_text_features_have_their_own_cache_entries_and_metadata(monkeypatch):
    code = ("from extractors.configs import TextConfig; from extractors.text import "
            "TextExtractor; print(TextExtractor(TextConfig()).version)")
    pinned = _python(code, pinned=True)
    for key in PINNED:
        monkeypatch.delenv(key, raising=False)
    assert pinned == TextExtractor(TextConfig()).version + "+pinned-maths"


def test_training_steps_with_the_fused_adamw_whose_square_root_is_exact(tmp_path: Path):
    """The unfused AdamW's torch.sqrt rounds differently per CPU, pinned or not (measured:
    docs/development.md); both training loops take the optimiser from fusion.training."""
    import torch

    from fusion.config import ModelConfig, TrainConfig
    from fusion.train import set_up
    from fusion.training import adamw
    from tests.tensor_cache import make_tensor_cache

    run = set_up(make_tensor_cache(tmp_path / "cache"), ModelConfig(), TrainConfig())
    assert run.optimizer.defaults["fused"] is True
    weight = torch.nn.Parameter(torch.zeros(64))
    step = adamw([weight], weight_decay=0.0, lr=1.0)
    weight.grad = torch.full((64,), 2.0)
    step.step()  # Adam's first step moves every weight by lr · sign(grad), up to eps
    assert torch.allclose(weight.detach(), torch.full((64,), -1.0))


def test_a_portable_corpus_reads_faces_on_crops_only(monkeypatch):
    """Face crops (``full_range``) are read on LiteRT's built-in kernels, the same bytes on any
    CPU; ``short_range`` follows faces in MediaPipe's XNNPACK runtime, which is not."""
    from extractors.facial import FacialConfig, FacialExtractor

    assert "+litert-" in FacialExtractor(FacialConfig()).version
    assert "+mediapipe-" in FacialExtractor(FacialConfig(detector="short_range")).version
    for key, value in PINNED.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="a portable corpus needs facial.detector: full_range"):
        FacialExtractor(FacialConfig(detector="short_range"))

"""``corpora.<name>.portable: true``: torch's floating-point maths on one code path, so that
corpus's text features and model are the same bytes on every x86-64 CPU and thread count.

Left alone, torch picks kernels by CPU: MKL's matrix products by vendor and instruction set,
oneDNN and torch's own vectorised kernels by instruction set (AVX2 or AVX-512), so the last
bits of the text features, and all that follows them, differ between an Intel and an AMD
machine (``bench/cpu_families.py``). The demo sets it, so its committed ``dvc.lock`` holds on
other machines (facial features need no setting, but ``detector: short_range`` is refused:
docs/development.md); it halves the text encoder's speed, which a large corpus need not pay.
The settings are read once, at torch's first operation: they go into the environment before
torch is imported, and worker processes inherit them."""

from __future__ import annotations

import os
import sys

PINNED = {"ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels: the AVX2 build, not AVX-512
          "MKL_CBWR": "COMPATIBLE",  # MKL: one code path for Intel and AMD alike
          "ONEDNN_MAX_CPU_ISA": "AVX2"}  # oneDNN: AVX2 at most


def pinned() -> bool:
    """Whether this process's environment holds the pinned settings."""
    return all(os.environ.get(key) == value for key, value in PINNED.items())


def version_tag() -> str:
    """For the ``version`` of an extractor that runs torch (its cache key and feature tables'
    metadata): features computed pinned and unpinned differ, so they must not share entries."""
    return "+pinned-maths" if pinned() else ""


def pin_maths(portable: bool) -> None:
    """Pin torch's maths when ``portable``; before torch is imported, or it would not act."""
    if not portable or pinned():
        return
    if "torch" in sys.modules:
        raise RuntimeError("corpora.<name>.portable must be applied before torch is imported.")
    os.environ.update(PINNED)

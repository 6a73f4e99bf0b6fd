"""A small synthetic tensor cache (the layout fusion/tensors.py writes) for model tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

LABELS = ["neutral", "joy", "anger"]
DIMS = {"text": 16, "acoustic": 6, "facial": 5}


def make_tensor_cache(root: Path, sizes=(96, 32, 24), seed: int = 0) -> Path:
    """Labels are written into the text and acoustic features (plus noise): they can be learnt."""
    rng = np.random.default_rng(seed)
    meta = {"labels": LABELS, "dims": DIMS, "splits": {},
            "normalisation": {"functionals": {"mean": [0.0] * 4, "std": [1.0] * 4}}}
    root.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "dev", "test"), sizes, strict=True):
        label = rng.integers(0, len(LABELS), n)
        arrays = {"label": label, "dialogue": np.arange(n) // 4, "turn": np.arange(n) % 4,
                  "speaker": np.arange(n) % 2, "functionals": rng.normal(size=(n, 4))}
        for m, width, length in (("text", 16, 8), ("acoustic", 6, 12), ("facial", 5, 10)):
            x = rng.normal(size=(n, length, width))
            if m != "facial":
                x[:, :, : len(LABELS)] += 2.0 * np.eye(len(LABELS))[label][:, None, :]
            lengths = rng.integers(2, length + 1, n)
            mask = np.arange(length)[None, :] < lengths[:, None]
            present = rng.random(n) > 0.2  # a fifth of utterances miss each modality
            mask &= present[:, None]
            arrays[m] = (x * mask[..., None]).astype(np.float16)
            arrays[f"{m}_mask"], arrays[f"{m}_present"] = mask, present
        arrays["functionals"] = arrays["functionals"].astype(np.float16)
        save_file(arrays, str(root / f"{split}.safetensors"))
        meta["splits"][split] = [f"{split}/{i}" for i in range(n)]
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def write_corpus(root: Path, speakers: int = 6, per_speaker: int = 8, seed: int = 0) -> tuple[
        Path, Path]:
    """A manifest and acoustic feature table of ``speakers`` speakers (every one in train or
    dev), with a speaker offset on top of a label signal: what speaker normalisation removes.

    Each utterance is its own dialogue, as in RAVDESS. Returns (manifest, features folder).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    ids, split, labels, speaker, lld, functionals = [], [], [], [], [], []
    for s in range(speakers):
        offset = rng.normal(scale=3.0, size=3)
        for u in range(per_speaker):
            label = u % len(LABELS)
            ids.append(f"s{s}/u{u}")
            split.append("dev" if s == speakers - 1 else "train")
            labels.append(LABELS[label])
            speaker.append(f"actor{s:02d}")
            signal = offset + 2.0 * np.eye(3)[label]
            frames = signal + rng.normal(size=(20, 3))
            lld.append(frames.tolist())
            functionals.append((signal + rng.normal(scale=0.5, size=3)).tolist())
    manifest = root / "manifest.parquet"
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "utterance_id": ids, "split": split, "label": labels, "dialogue_id": ids,
        "turn": [0] * len(ids), "speaker": speaker,
    }).replace_schema_metadata({"labels": json.dumps(LABELS)}), manifest)
    features = root / "features"
    features.mkdir(exist_ok=True)
    vec = pa.list_(pa.float32(), 3)
    pq.write_table(pa.table({
        "utterance_id": ids, "lld": pa.array(lld, pa.list_(vec)),
        "functionals": pa.array(functionals, vec),
    }).replace_schema_metadata({"lld_hop_s": "0.1"}), features / "acoustic.parquet")
    return manifest, features

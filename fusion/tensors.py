"""Padded tensors per split from the manifest and the feature tables, written once.

One safetensors file per split (``<split>.safetensors``) plus ``meta.json`` (label names,
utterance ids, dimensions, the train-split normalisation). An utterance whose modality is
missing (an error row, no media) has ``<modality>_present = 0`` and an all-false mask: it is
masked, never faked.

Scaling (``tensors.standardise``, ``tensors.speaker_norm``): the listed modalities are
standardised with train-split statistics (mean and std over valid frames; the acoustic
functionals over utterances); with ``speaker_norm: speaker`` acoustic and facial features are
standardised per speaker (the manifest's ``speaker``) with that speaker's own statistics over
all of its utterances. Those use unlabelled features only, so they are as legitimate for an
unseen test speaker as for a training one. A speaker with fewer than
``speaker_min_utterances`` utterances (or no name, or a lone clip in ``mcncl predict``)
falls back to the train statistics, which ``meta.json`` keeps. Standardised values are
clipped to ±``CLIP_SD`` standard deviations: a feature almost constant over the train
utterances (ComParE has such) lands thousands of deviations out for a new speaker, past
float16's range (an inf in the cache, a NaN in training).

``speaker`` in the cache is each speaker's index within its dialogue (0 for whoever speaks
first, 1 for the next new voice, ...), as ERC models use it: it means the same for a dialogue
the model never saw.

``meta.json`` also records the cache's provenance (:func:`feature_provenance`): how each
modality's features were made, as their Parquet file says, plus the tensor settings and the
label set. Training copies it into the checkpoint, and evaluate and predict compare against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from safetensors.numpy import save_file

from extractors.base import RUN_ONLY
from extractors.configs import AcousticConfig, FacialConfig, TextConfig
from extractors.corpora.manifest import manifest_labels
from fusion.config import TensorConfig
from vocabulary import SPLITS
from vocabulary.atomic import atomic_path, write_text

DTYPE = np.float16  # storage precision of the feature tensors (integers keep their own)
EXTRACTOR_CONFIGS = {"text": TextConfig, "acoustic": AcousticConfig, "facial": FacialConfig}


def build_tensors(manifest: Path, features: Path, out: Path, config: TensorConfig,
                  normalisation: dict | None = None) -> dict:
    """Write ``out/<split>.safetensors`` and ``out/meta.json``; return the metadata.

    Train statistics come from the train split, or from ``normalisation`` when given (a
    trained model's, for new clips).
    """
    table = pq.read_table(manifest)
    labels = manifest_labels(table)
    rows = table.select(["utterance_id", "split", "label", "dialogue_id", "turn",
                         "speaker"]).to_pylist()
    index = {r["utterance_id"]: i for i, r in enumerate(rows)}
    n = len(rows)
    arrays: dict[str, np.ndarray] = {
        "label": np.array([labels.index(r["label"]) for r in rows], np.int64),
        "dialogue": _codes([r["dialogue_id"] for r in rows]),
        "turn": np.array([r["turn"] for r in rows], np.int64),
        "speaker": speaker_in_dialogue([r["dialogue_id"] for r in rows],
                                       [r["turn"] for r in rows],
                                       [r["speaker"] or "" for r in rows]),
    }
    dims = {}
    if (features / "text.parquet").is_file():
        dims["text"] = _text(features / "text.parquet", index, n, config, arrays)
    if (features / "acoustic.parquet").is_file():
        dims["acoustic"] = _acoustic(features / "acoustic.parquet", index, n, config, arrays)
    if (features / "facial.parquet").is_file():
        dims["facial"] = _facial(features / "facial.parquet", index, n, config, arrays)
    split_of = np.array([r["split"] for r in rows])
    train = split_of == "train"
    speakers = _codes([r["speaker"] or "" for r in rows])
    named = np.array([bool(r["speaker"]) for r in rows])
    norms = _standardise(arrays, train, np.where(named, speakers, -1), config,
                         normalisation or {})
    out.mkdir(parents=True, exist_ok=True)
    meta = {"labels": labels, "dims": dims, "normalisation": norms, "tensors": asdict(config),
            "provenance": feature_provenance(features, config, labels), "splits": {}}
    for split in SPLITS:
        chosen = np.flatnonzero(split_of == split)
        meta["splits"][split] = [rows[i]["utterance_id"] for i in chosen]
        tensors = {k: (v[chosen].astype(DTYPE) if v.dtype == np.float32 else v[chosen])
                   for k, v in arrays.items()}
        with atomic_path(out / f"{split}.safetensors") as tmp:
            save_file(tensors, str(tmp))
    write_text(json.dumps(meta), out / "meta.json")
    return meta


def feature_provenance(features: Path, config: TensorConfig, labels: list[str]) -> dict:
    """How a tensor cache's features were made: per modality the extractor, version, config
    and config hash its Parquet file's schema metadata records (``extractors.base
    .schema_metadata``), then the tensor settings (``tensors``) and the label set (``labels``).

    Run-only settings (workers, device, ...) are left out of each config: they cannot change a
    feature, so a model must not be refused over them."""
    provenance: dict[str, Any] = {}
    for modality in EXTRACTOR_CONFIGS:
        path = Path(features) / f"{modality}.parquet"
        if not path.is_file():
            continue
        meta = {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
        recorded = json.loads(meta["config"]) if "config" in meta else None
        provenance[modality] = {
            "extractor": meta.get("extractor"), "version": meta.get("version"),
            "config": feature_settings(modality, recorded) if recorded is not None else None,
            "config_hash": meta.get("config_hash")}
    return {**provenance, "tensors": _plain(asdict(config)), "labels": list(labels)}


def feature_settings(modality: str, values: dict) -> dict:
    """``values`` (a modality's extractor config as a dict) without its run-only settings, as
    plain JSON values."""
    run_only = {f.name for f in fields(EXTRACTOR_CONFIGS[modality]) if f.metadata == RUN_ONLY}
    return _plain({k: v for k, v in values.items() if k not in run_only})


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists), so provenance compares equal
    whether it was just computed or read from a file."""
    return json.loads(json.dumps(value, default=str))


def speaker_in_dialogue(dialogues: list[str], turns: list[int],
                        speakers: list[str]) -> np.ndarray:
    """Each utterance's speaker as an index within its dialogue, by first turn spoken."""
    seen: dict[str, dict[str, int]] = {}
    codes = np.zeros(len(dialogues), np.int64)
    for i in sorted(range(len(dialogues)), key=lambda i: (dialogues[i], turns[i])):
        voices = seen.setdefault(dialogues[i], {})
        codes[i] = voices.setdefault(speakers[i], len(voices))
    return codes


def _codes(values: list[str]) -> np.ndarray:
    mapping = {v: i for i, v in enumerate(dict.fromkeys(values))}
    return np.array([mapping[v] for v in values], np.int64)


def _allocate(arrays: dict, name: str, n: int, length: int, width: int) -> None:
    arrays[name] = np.zeros((n, length, width), np.float32)
    arrays[f"{name}_mask"] = np.zeros((n, length), bool)
    arrays[f"{name}_present"] = np.zeros(n, bool)


def _text(path: Path, index: dict, n: int, config: TensorConfig, arrays: dict) -> int:
    width = pq.read_schema(path).field("embedding").type.list_size
    _allocate(arrays, "text", n, config.max_text_tokens, width)
    for batch in pq.ParquetFile(path).iter_batches(columns=["utterance_id", "token_embeddings"]):
        for uid, tokens in zip(batch.column(0).to_pylist(), batch.column(1), strict=True):
            if uid not in index:
                continue
            matrix = _matrix(tokens, width)[: config.max_text_tokens]
            _put(arrays, "text", index[uid], matrix, np.ones(len(matrix), bool))
    return width


def _acoustic(path: Path, index: dict, n: int, config: TensorConfig, arrays: dict) -> int:
    schema = pq.read_schema(path)
    width = schema.field("lld").type.value_type.list_size
    hop = float(schema.metadata[b"lld_hop_s"])
    group = max(1, round(1 / config.acoustic_rate_hz / hop))
    _allocate(arrays, "acoustic", n, config.max_acoustic_frames, width)
    n_functionals = schema.field("functionals").type.list_size
    arrays["functionals"] = np.zeros((n, n_functionals), np.float32)
    columns = ["utterance_id", "lld", "functionals"]
    for batch in pq.ParquetFile(path).iter_batches(columns=columns):
        for uid, lld, functionals in zip(*(batch.column(c) for c in columns), strict=True):
            if uid.as_py() not in index:
                continue
            i = index[uid.as_py()]
            frames = _pool(_matrix(lld, width), group)[: config.max_acoustic_frames]
            _put(arrays, "acoustic", i, frames, np.ones(len(frames), bool))
            arrays["functionals"][i] = np.asarray(functionals.values, np.float32)
    return width


def _facial(path: Path, index: dict, n: int, config: TensorConfig, arrays: dict) -> int:
    width = pq.read_schema(path).field("aus").type.value_type.list_size
    _allocate(arrays, "facial", n, config.max_facial_frames, width)
    for batch in pq.ParquetFile(path).iter_batches(columns=["utterance_id", "aus"]):
        for uid, aus in zip(batch.column(0).to_pylist(), batch.column(1), strict=True):
            if uid not in index:
                continue
            frames = aus.values  # a list of AU vectors, null where no face was found
            valid = np.array([f.is_valid for f in frames], bool)[: config.max_facial_frames]
            matrix = np.array([f.values.to_numpy() if f.is_valid else np.zeros(width)
                               for f in frames][: config.max_facial_frames], np.float32)
            _put(arrays, "facial", index[uid], matrix, valid)
    return width


def _matrix(cell, width: int) -> np.ndarray:
    return np.asarray(cell.values.flatten(), np.float32).reshape(-1, width)


def _pool(frames: np.ndarray, group: int) -> np.ndarray:
    usable = len(frames) // group * group or len(frames)
    if group == 1 or usable < group:
        return frames
    return frames[:usable].reshape(-1, group, frames.shape[1]).mean(axis=1)


def _put(arrays: dict, name: str, i: int, matrix: np.ndarray, mask: np.ndarray) -> None:
    arrays[name][i, : len(matrix)] = matrix
    arrays[f"{name}_mask"][i, : len(mask)] = mask
    arrays[f"{name}_present"][i] = bool(mask.any())


CLIP_SD = 20.0
SCALED = {"text": ("text",), "acoustic": ("acoustic", "functionals"), "facial": ("facial",)}
BY_SPEAKER = ("acoustic", "facial")  # what speaker_norm scales; text is not a voice or a face


def _standardise(arrays: dict, train: np.ndarray, speakers: np.ndarray, config: TensorConfig,
                 given: dict) -> dict:
    """Scale features in place (see the module docstring); return the train statistics."""
    if config.speaker_norm not in ("none", "speaker"):
        raise ValueError(f"tensors.speaker_norm {config.speaker_norm!r} is unknown; use none "
                         "or speaker.")
    norms = {}
    for modality, names in SCALED.items():
        by_speaker = config.speaker_norm == "speaker" and modality in BY_SPEAKER
        if modality not in arrays or not (modality in config.standardise or by_speaker):
            continue
        present = arrays[f"{modality}_present"]
        for name in names:
            valid = arrays[f"{name}_mask"] if name != "functionals" else present
            rows = np.ones(len(present), bool)
            plans = []  # (rows, mean, std), all computed before anything is scaled
            if by_speaker:
                for speaker in np.unique(speakers[present & (speakers >= 0)]):
                    mine = speakers == speaker
                    if (mine & present).sum() >= config.speaker_min_utterances:
                        plans.append((mine, *_stats(arrays[name][_rows(valid, mine)])))
                        rows &= ~mine
            if given.get(name):
                mean, std = (np.asarray(given[name][k], np.float32) for k in ("mean", "std"))
            else:
                mean, std = _stats(arrays[name][_rows(valid, train)], arrays[name].shape[-1])
            norms[name] = {"mean": mean.tolist(), "std": std.tolist()}
            for chosen, m, s in [*plans, (rows, mean, std)]:
                where = _rows(valid, chosen)
                arrays[name][where] = np.clip((arrays[name][where] - m) / s, -CLIP_SD, CLIP_SD)
    return norms


def _rows(valid: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return valid & (rows[:, None] if valid.ndim == 2 else rows)


def _stats(sample: np.ndarray, width: int = 0) -> tuple[np.ndarray, np.ndarray]:
    if not len(sample):
        return np.zeros(width, np.float32), np.ones(width, np.float32)
    std = sample.std(axis=0)
    return sample.mean(axis=0).astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(
        np.float32)

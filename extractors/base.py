"""What every feature extractor shares: the utterance it is given and the failure it may return.

An extractor is a plain object with ``modality``, ``version``, ``config`` (a frozen dataclass),
``schema`` (its feature columns), ``digest(utt)`` (a content hash of its input, cheap),
``cost(utt)`` (its relative work, for scheduling the costliest first) and ``extract(utts)``
(features or a :class:`Failure` per utterance). An extractor that reads the dialogue's earlier
turns says how many with ``history`` (absent: none). No Prefect, no files written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Failure:
    """Why one utterance has no features: ``kind`` is a short code, ``message`` one sentence."""

    kind: str
    message: str


class MediaError(Exception):
    """Raised inside extractors for a bad input; converted into a :class:`Failure`."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class UtteranceInput:
    """The part of a manifest row that extractors read; media paths are absolute."""

    utterance_id: str
    text: str
    audio_path: str | None
    video_path: str | None
    start_s: float | None = None
    end_s: float | None = None
    speaker: str = ""
    # The dialogue's earlier turns as (speaker, text), the nearest first; filled only for an
    # extractor that asks for them (its ``history``: how many turns it reads).
    previous: tuple[tuple[str, str], ...] = ()

    @property
    def audio_segment(self) -> tuple[float | None, float | None]:
        """The segment applies to the audio only when the audio is the video file itself."""
        if self.audio_path and self.audio_path == self.video_path:
            return self.start_s, self.end_s
        return None, None


Result = dict[str, Any] | Failure


class Extractor(Protocol):
    modality: str
    # What else decides its results, in the cache key: the code hash of its module
    # (extractors/code_hash.py), its libraries' versions and its model weights' hash.
    version: str
    config: Any
    schema: pa.Schema
    metadata: dict[str, Any]  # extra schema metadata, e.g. feature names

    def digest(self, utt: UtteranceInput) -> str | Failure: ...

    def cost(self, utt: UtteranceInput) -> float: ...

    def extract(self, utts: list[UtteranceInput]) -> list[Result]: ...


RUN_ONLY = {"cache": False}  # field metadata: a setting that cannot change the features


def config_hash(config: Any) -> str:
    """A short, stable hash of the fields of a config dataclass that can change the features."""
    values = {f.name: getattr(config, f.name) for f in fields(config) if f.metadata != RUN_ONLY}
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: str, extra: str = "") -> str | Failure:
    """sha256 of a file's bytes (plus ``extra``, e.g. a segment); a Failure when it is absent."""
    p = Path(path)
    if not p.is_file():
        return Failure("missing_file", f"{path}: file not found; restore it or fix the manifest.")
    h = hashlib.sha256(extra.encode())
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_size(path: str | None) -> float:
    """The size of a media file in bytes, as a stand-in for the work it takes; 0 when absent."""
    try:
        return float(os.path.getsize(path)) if path else 0.0
    except OSError:
        return 0.0


def schema_metadata(extractor: Extractor) -> dict[bytes, bytes]:
    """Schema metadata recording how a feature table was produced (DESIGN.md contract)."""
    meta = {
        "extractor": extractor.modality,
        "version": extractor.version,
        "config": json.dumps(asdict(extractor.config), sort_keys=True, default=str),
        "config_hash": config_hash(extractor.config),
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in extractor.metadata.items()},
    }
    return {k.encode(): v.encode() for k, v in meta.items()}


MODEL_FIELDS = ("model", "hf_model", "model_path")  # config fields that may name model files


def files_signature(path: str) -> tuple:
    """(file, size, mtime) of every file under ``path`` (or of ``path``): cheap, no reading."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file())


def model_files_signature(config: Any) -> tuple:
    """The files behind a config's model settings, so a loaded model can tell it is stale."""
    return tuple(files_signature(value) for name in MODEL_FIELDS
                 if isinstance(value := getattr(config, name, None), str) and value
                 and Path(value).exists())


def weights_hash(path: str) -> str:
    """Identify a model folder by the content of its files, so a fine-tuned model saved over
    the same folder never meets the old model's cached features. Hashing ~90 MB takes about
    0.2 s; the result is kept per process while no file's size or mtime changes."""
    return _content_hash(path, files_signature(path))


@functools.lru_cache(maxsize=16)
def _content_hash(path: str, signature: tuple) -> str:
    h = hashlib.sha256()
    for name, _, _ in signature:
        h.update(str(Path(name).relative_to(path)).encode() + b"\0")
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:12]

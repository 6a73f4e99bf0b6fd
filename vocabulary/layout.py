"""Where the pipeline keeps one corpus's files: the one place the folder layout is written down.

Every command, the DuckDB views and the report take their paths from :class:`Layout`;
``dvc.yaml`` writes the same paths with ``${key}`` for the corpus, and a test checks that
the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """The files of corpus ``corpus`` under the data folder ``data`` (``data/`` of the project)."""

    corpus: str
    data: Path = Path("data")

    @property
    def manifest(self) -> Path:
        return self.data / "manifests" / f"{self.corpus}.parquet"

    @property
    def features(self) -> Path:
        return self.data / "features" / self.corpus

    @property
    def errors(self) -> Path:
        """One error table per extraction stage: ``<errors>/<modality>.parquet``."""
        return self.features / "errors"

    def feature_table(self, modality: str) -> Path:
        return self.features / f"{modality}.parquet"

    def error_table(self, modality: str) -> Path:
        return self.errors / f"{modality}.parquet"

    @property
    def tensors(self) -> Path:
        return self.data / "tensors" / self.corpus

    @property
    def models(self) -> Path:
        """The trained model, its scores and everything evaluate and report write."""
        return self.data / "models" / self.corpus

    @property
    def text_encoder(self) -> Path:
        return self.models / "text_encoder"

    @property
    def checkpoint(self) -> Path:
        return self.models / "model.safetensors"

    @property
    def metrics(self) -> Path:
        return self.models / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.models / "predictions.parquet"

    @property
    def train_log(self) -> Path:
        return self.models / "train_log.csv"

    @property
    def report(self) -> Path:
        return self.models / "report.html"

    @staticmethod
    def corpora(data: Path = Path("data")) -> list[str]:
        """The corpora that have a manifest under ``data``, by name."""
        return sorted(p.stem for p in (data / "manifests").glob("*.parquet"))

"""Where the pipeline keeps one corpus's files: the one place the folder layout is written down.

Every command, the DuckDB views and the report take their paths from :class:`Layout`;
``dvc.yaml`` writes the same paths with ``${key}`` for the corpus, and a test checks that
the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def corpus_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a corpus, in words, or None when it can: a corpus name is one
    plain folder name ([A-Za-z0-9][A-Za-z0-9_.-]*), so it never climbs out of the data
    folders nor replaces one."""
    if name and name[0] not in "_.-" and set(name) <= NAME_CHARACTERS:
        return None
    return (f"corpus name {name!r} is not one plain folder name; use letters, digits, _, . and "
            "- only, starting with a letter or digit (e.g. meld_text)")


@dataclass(frozen=True)
class Layout:
    """The files of corpus ``corpus`` under the data folder ``data`` (``data/`` of the project)."""

    corpus: str
    data: Path = Path("data")

    def __post_init__(self) -> None:
        """Every path built here stays under ``data``: the corpus is one path component.
        (params.yaml asks more of a name, :func:`corpus_name_problem`; a manifest put under
        data/manifests by hand may have any file name, and is quoted wherever SQL reads it.)"""
        if self.corpus in ("", ".", "..") or any(c in self.corpus for c in "/\\\0"):
            raise ValueError(f"corpus name {self.corpus!r} would leave {self.data}; "
                             "name a corpus with one plain folder name.")

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

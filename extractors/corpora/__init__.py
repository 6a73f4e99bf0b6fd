"""Corpus adapters: each turns a corpus on disk into the manifest of DESIGN.md."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from extractors.corpora.csv_corpus import prepare_csv
from extractors.corpora.iemocap import prepare_iemocap
from extractors.corpora.manifest import CorpusError, Report, root_relative_to, split_counts
from extractors.corpora.meld import prepare_meld
from extractors.corpora.ravdess import prepare_ravdess
from vocabulary.atomic import write_parquet

KINDS = ("meld", "iemocap", "ravdess", "csv")


def prepare_corpus(
    kind: str,
    root: str | Path,
    *,
    name: str,
    encoding: str = "utf-8",
    label_set: str = "6",
    dev_fraction: float = 0.2,
    dev_actors: tuple[int, ...] = (11, 12),
    test_actors: tuple[int, ...] = (23, 24),
    labels: tuple[str, ...] = (),
) -> tuple[pa.Table, Report]:
    """Run the adapter for ``kind`` on ``root``; options that do not apply to it are ignored."""
    root = Path(root)
    if kind == "meld":
        return prepare_meld(root, name=name, encoding=encoding)
    if kind == "iemocap":
        return prepare_iemocap(root, name=name, label_set=label_set, dev_fraction=dev_fraction)
    if kind == "ravdess":
        return prepare_ravdess(root, name=name, dev_actors=dev_actors, test_actors=test_actors)
    if kind == "csv":
        return prepare_csv(root, name=name, labels=labels, encoding=encoding)
    raise CorpusError(f"corpus kind {kind!r} is unknown; use one of {', '.join(KINDS)}.")


def write_manifest(kind: str, root: str | Path, out: Path, **options) -> tuple[pa.Table, Report]:
    """:func:`prepare_corpus`, then the manifest written to ``out`` atomically. A root given
    as a relative path (``root: data/demo`` in params.yaml) is stored relative to ``out``."""
    table, report = prepare_corpus(kind, root, **options)
    if not Path(root).is_absolute():
        table = root_relative_to(table, out.parent)
    write_parquet(table, out)
    return table, report


__all__ = ["KINDS", "CorpusError", "Report", "prepare_corpus", "split_counts", "write_manifest"]

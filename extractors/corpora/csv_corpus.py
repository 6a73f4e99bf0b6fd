"""A user's own corpus as one CSV file.

Required columns: ``utterance_id, text, label, split`` and at least one of ``audio_path`` /
``video_path`` (paths relative to the CSV's folder, or absolute; may be empty for text-only
rows). Optional: ``dialogue_id`` (default: the utterance id), ``turn`` (default: row order
within the dialogue), ``speaker``, ``start_s``, ``end_s``. The label set is the sorted set of
labels found, unless ``labels`` is given (then any other label is an error).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa

from extractors.corpora.csvfile import read_csv_rows
from extractors.corpora.manifest import CorpusError, Report, Utterance, build_manifest

REQUIRED = ("utterance_id", "text", "label", "split")


def prepare_csv(
    csv_path: Path, name: str = "custom", labels: tuple[str, ...] = (), encoding: str = "utf-8"
) -> tuple[pa.Table, Report]:
    """Read a corpus CSV into a manifest table and a report."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise CorpusError(f"{csv_path}: file not found; give the path of your corpus CSV.")
    root = csv_path.parent
    rows = read_csv_rows(csv_path, REQUIRED, encoding)
    if rows and not {"audio_path", "video_path"} & set(rows[0][1]):
        raise CorpusError(
            f"{csv_path}: needs an audio_path or video_path column (may be empty for text-only "
            "rows); add one to the header row."
        )
    report = Report()
    turns: Counter = Counter()
    utterances = []
    for line, row in rows:
        origin = f"{csv_path}:{line}"
        dialogue = row.get("dialogue_id") or row["utterance_id"]
        utterances.append(
            Utterance(
                utterance_id=row["utterance_id"],
                corpus=name,
                split=row["split"].lower(),
                dialogue_id=dialogue,
                turn=_number(row, "turn", origin, int) if row.get("turn") else turns[dialogue],
                speaker=row.get("speaker", ""),
                text=row["text"],
                label=row["label"].lower(),
                audio_path=_media(root, row.get("audio_path", ""), report),
                video_path=_media(root, row.get("video_path", ""), report),
                start_s=_number(row, "start_s", origin, float),
                end_s=_number(row, "end_s", origin, float),
                origin=origin,
            )
        )
        turns[dialogue] += 1
    label_set = labels or tuple(sorted({u.label for u in utterances}))
    return build_manifest(
        utterances, corpus_root=root, labels=label_set, report=report, source=str(csv_path)
    ), report


def _media(root: Path, value: str, report: Report) -> str | None:
    if not value:
        return None
    if not (root / value).is_file():
        report.add("missing_media", value)
        return None
    return value


def _number(row: dict[str, str], column: str, origin: str, kind: type) -> int | float | None:
    value = row.get(column, "")
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise CorpusError(
            f"{origin}: column {column} must be a number, got {value!r}; fix the row."
        ) from None

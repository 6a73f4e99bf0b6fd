"""The manifest contract: one row per utterance, media paths relative to a corpus root.

Every corpus adapter builds a list of :class:`Utterance` and calls :func:`build_manifest`, which
validates it (unique ids, labels inside the label set, known splits) and returns a pyarrow
table whose schema metadata records the corpus root, the label set and what was counted.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vocabulary import SPLITS

SCHEMA = pa.schema(
    [
        ("utterance_id", pa.string()),
        ("corpus", pa.string()),
        ("split", pa.string()),
        ("dialogue_id", pa.string()),
        ("turn", pa.int32()),
        ("speaker", pa.string()),
        ("text", pa.string()),
        ("label", pa.string()),
        ("audio_path", pa.string()),
        ("video_path", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("source_start_s", pa.float64()),
        ("source_end_s", pa.float64()),
    ]
)


def split_counts(table: pa.Table) -> list[dict[str, object]]:
    """Per split: utterances, distinct labels, and how many have an audio and a video file."""
    rows = []
    for split in SPLITS:
        part = table.filter(pc.equal(table["split"], split))
        if part.num_rows:
            rows.append({"split": split, "rows": part.num_rows,
                         "labels": len(set(part["label"].to_pylist())),
                         "with audio": part.num_rows - part["audio_path"].null_count,
                         "with video": part.num_rows - part["video_path"].null_count})
    return rows


class CorpusError(ValueError):
    """A problem with the corpus on disk that the user must fix; the message says how."""


@dataclass
class Utterance:
    """One manifest row.

    ``start_s``/``end_s`` cut a segment out of the media file (null: the whole file);
    ``source_start_s``/``source_end_s`` say where the utterance sits in its source recording
    (MELD's episode time stamps), for reference only.
    """

    utterance_id: str
    corpus: str
    split: str
    dialogue_id: str
    turn: int
    speaker: str
    text: str
    label: str
    audio_path: str | None = None
    video_path: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    source_start_s: float | None = None
    source_end_s: float | None = None
    origin: str = field(default="", repr=False)  # "file:row" for error messages; not stored


@dataclass
class Report:
    """What an adapter counted while reading a corpus: shown to the user, kept in metadata."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(example)

    def lines(self) -> list[str]:
        return [
            f"{kind}: {n} (e.g. {', '.join(self.examples.get(kind, []))})"
            for kind, n in sorted(self.counts.items())
        ]


def build_manifest(
    utterances: list[Utterance],
    *,
    corpus_root: Path,
    labels: tuple[str, ...],
    report: Report,
    source: str,
) -> pa.Table:
    """Validate ``utterances`` and return the manifest table.

    ``source`` names what was read (shown when there is nothing usable in it).
    """
    if not utterances:
        raise CorpusError(f"{source}: no utterances found; check the corpus root and its layout.")
    seen: dict[str, str] = {}
    for utt in utterances:
        if utt.utterance_id in seen:
            raise CorpusError(
                f"{utt.origin}: utterance id {utt.utterance_id!r} already appears at "
                f"{seen[utt.utterance_id]}; remove or renumber the duplicate row."
            )
        seen[utt.utterance_id] = utt.origin
        if utt.label not in labels:
            raise CorpusError(
                f"{utt.origin}: label {utt.label!r} is not one of {', '.join(labels)}; "
                "fix the label or choose another label set."
            )
        if utt.split not in SPLITS:
            raise CorpusError(
                f"{utt.origin}: split {utt.split!r} is not one of {', '.join(SPLITS)}; fix it."
            )
    rows = [{k: v for k, v in asdict(u).items() if k != "origin"} for u in utterances]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    metadata = {
        "corpus_root": str(corpus_root.resolve()),
        "labels": json.dumps(list(labels)),
        "report": json.dumps(dict(report.counts)),
    }
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})


def corpus_root(table_or_path: pa.Table | str | Path) -> Path:
    """The corpus root stored in a manifest's metadata; a relative one (see
    :func:`root_relative_to`) is relative to the manifest file's folder."""
    schema = (
        table_or_path.schema
        if isinstance(table_or_path, pa.Table)
        else pq.read_schema(table_or_path)
    )
    root = Path(schema.metadata[b"corpus_root"].decode())
    if not root.is_absolute() and not isinstance(table_or_path, pa.Table):
        root = Path(os.path.normpath(Path(table_or_path).absolute().parent / root))
    return root


def root_relative_to(table: pa.Table, folder: Path) -> pa.Table:
    """``table`` with its corpus root stored relative to ``folder`` (where the manifest is
    written): a corpus inside the project then gives the same manifest bytes in every clone."""
    metadata = dict(table.schema.metadata)
    root = os.path.relpath(metadata[b"corpus_root"].decode(), Path(folder).absolute())
    metadata[b"corpus_root"] = Path(root).as_posix().encode()
    return table.replace_schema_metadata(metadata)


def manifest_labels(table: pa.Table) -> list[str]:
    """The label set stored in a manifest's metadata, in its canonical order."""
    return json.loads(table.schema.metadata[b"labels"])

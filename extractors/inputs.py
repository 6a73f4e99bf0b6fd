"""The extractors' inputs read from a manifest: paths made absolute, dialogue history attached.

Kept free of Prefect so that anything holding a manifest (the flow, the benchmarks, a GPU box
with torch alone) reads utterances the same way.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from extractors.base import UtteranceInput
from extractors.corpora.manifest import corpus_root
from extractors.text.extractor import previous_turns


def read_inputs(manifest: Path, history: int = 0) -> list[UtteranceInput]:
    """The manifest's utterances, with ``history`` earlier turns of the dialogue each."""
    table = pq.read_table(manifest)
    root = corpus_root(manifest)
    rows = table.select(["utterance_id", "split", "dialogue_id", "turn", "speaker", "text",
                         "audio_path", "video_path", "start_s", "end_s"]).to_pylist()
    earlier = previous_turns(rows, history)

    def absolute(rel: str | None) -> str | None:
        return str(root / rel) if rel else None

    return [
        UtteranceInput(r["utterance_id"], r["text"] or "", absolute(r["audio_path"]),
                       absolute(r["video_path"]), r["start_s"], r["end_s"], r["speaker"] or "",
                       earlier.get(r["utterance_id"], ()))
        for r in rows
    ]

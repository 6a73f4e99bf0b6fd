"""Two helpers for running the benchmarks on a machine with many cores or a GPU.

``extract_in_process`` writes the same feature and error tables as the extraction flow, but
calls the extractor directly (no Prefect, no cache), so a benchmark also runs where only torch
and the model libraries are installed. ``run_jobs`` runs independent calls (one training per
configuration and seed) in separate processes side by side.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from extractors.inputs import read_inputs
from extractors.registry import make_extractor
from flows.tables import write_stage_tables

CHUNK = 1024  # utterances per extractor call


def extract_in_process(modality: str, manifest: Path, out_dir: Path, config: Any) -> int:
    """Extract ``modality`` for every utterance of ``manifest`` into ``out_dir``; return errors."""
    extractor = make_extractor(modality, config)
    utts = read_inputs(manifest, getattr(extractor, "history", 0))
    results = []
    for i in range(0, len(utts), CHUNK):
        results += extractor.extract(utts[i:i + CHUNK])
    ids = [utt.utterance_id for utt in utts]
    *_, errors = write_stage_tables(zip(ids, results, strict=True), extractor, out_dir)
    return len(errors)


def run_jobs(fn: Callable, calls: list[tuple], jobs: int) -> list[Any]:
    """``fn(*call)`` for each call, in order; ``jobs`` > 1 runs them in that many processes."""
    if jobs <= 1 or len(calls) <= 1:
        return [fn(*call) for call in calls]
    context = multiprocessing.get_context("spawn")  # CUDA and torch threads do not survive fork
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        return list(pool.map(fn, *zip(*calls, strict=True)))

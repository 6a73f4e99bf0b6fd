"""Frames per second of the MediaPipe facial backend: the Prefect flow versus a bare loop.

    python bench/facial.py [--repeats 3]

Bare loop: one FaceLandmarker in VIDEO mode over the same sampled frames (``facial.fps``) of
every clip, one process, one thread: decode, detect, map blendshapes to AUs. Flow: ``mcncl
extract facial`` with the default params and a fresh cache. Corpora: the demo corpus (640x360,
10 fps clips) and ``../shared/data/ravdess_av`` (640x360, 30 fps). Prints medians and ratios,
end to end and inside the flow run (a flow run costs ~1 s of set-up and tear-down against
Prefect's API whatever its size); "per core" divides the speed-up by the cores it can use.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from mcncl.offline import go_offline

go_offline()

from extractors.corpora import prepare_corpus  # noqa: E402
from extractors.facial import FacialExtractor  # noqa: E402
from flows.extract import read_inputs, run_extraction  # noqa: E402
from mcncl.atomic import write_parquet  # noqa: E402
from mcncl.config import load_params  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CORPORA = {"demo": ("meld", REPO / "data" / "demo"),
           "ravdess_av": ("ravdess", REPO.parent / "shared" / "data" / "ravdess_av")}


def bare_loop(config, manifest: Path) -> float:
    extractor = FacialExtractor(config)  # a fresh one: its own landmarker, this thread only
    utts = [u for u in read_inputs(manifest) if u.video_path]
    start = time.perf_counter()
    frames = sum(extractor.extract([u])[0]["n_frames"] for u in utts)
    return frames / (time.perf_counter() - start)


def flow(config, extract, manifest: Path, work: Path) -> tuple[float, float]:
    """Frames per second end to end, and inside the flow run (without its ~1 s of set-up)."""
    cache = Path(tempfile.mkdtemp(dir=work))
    start = time.perf_counter()
    summary = run_extraction("facial", manifest, cache / "out",
                             replace(extract, cache_dir=str(cache)), config)
    seconds = time.perf_counter() - start
    frames = sum(pq.read_table(cache / "out" / "facial.parquet")["n_frames"].to_pylist())
    return frames / seconds, frames / summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    cores = params.facial.workers or os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"| corpus | bare loop frames/s | flow frames/s end to end | flow / bare | "
              f"per core ({cores}) | inside the flow run | flow / bare | per core |")
        print("|---|---|---|---|---|---|---|---|")
        for name, (kind, root) in CORPORA.items():
            if not root.is_dir():
                continue
            manifest = work / f"{name}.parquet"
            write_parquet(prepare_corpus(kind, root, name=name)[0], manifest)
            flow(params.facial, params.extract, manifest, work)  # warm-up: server, model
            bare = statistics.median(bare_loop(params.facial, manifest)
                                     for _ in range(args.repeats))
            runs = [flow(params.facial, params.extract, manifest, work)
                    for _ in range(args.repeats)]
            fast = statistics.median(r[0] for r in runs)
            inner = statistics.median(r[1] for r in runs)
            print(f"| {name} | {bare:.1f} | {fast:.1f} | {fast / bare:.2f} | "
                  f"{fast / bare / cores:.2f} | {inner:.1f} | {inner / bare:.2f} | "
                  f"{inner / bare / cores:.2f} |", flush=True)


if __name__ == "__main__":
    main()

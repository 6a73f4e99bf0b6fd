"""Frames per second of the MediaPipe facial backend: the Prefect flow versus a bare loop.

    python bench/facial.py [--repeats 3] [--scale 4]

Bare loop: one FaceLandmarker in VIDEO mode over the same sampled frames (``facial.fps``) of
every clip, one process, one thread: decode, detect, map blendshapes to AUs. Flow: ``mcncl
extract facial`` with the default params and a fresh cache. Bare and flow runs alternate, and
the table gives medians. Corpora (all 640x360): the demo corpus (72 clips), a demo-like corpus
``--scale`` times larger built here (every script line spoken ``--scale`` times, each a little
differently, so every clip is distinct content) and ``../shared/data/ravdess_av`` (18 clips).
"end to end" includes the flow run's set-up and tear-down against Prefect's API (~1 s whatever
the corpus size), "inside" starts when the flow's body does. "per core" divides the speed-up
by the cores the flow may use; "per CPU second" compares frames per CPU second (this process
and the Prefect server it started) of the flow with the bare loop's.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from mcncl.offline import go_offline

go_offline()

from extractors.corpora import prepare_corpus  # noqa: E402
from extractors.facial import FacialExtractor  # noqa: E402
from flows.extract import read_inputs, run_extraction  # noqa: E402
from mcncl.atomic import write_parquet  # noqa: E402
from mcncl.config import load_params  # noqa: E402
from mcncl.demo import build_demo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENDINGS = ["", " Really.", " I mean it.", " Honestly, I do.", " That is all.", " Truly."]


def cpu_seconds() -> float:
    """CPU time of this process and its children (Prefect's temporary API server)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # it may just have exited
            total += sum(child.cpu_times()[:2])
    return total


def scaled_demo(params, scale: int, work: Path) -> Path:
    """The demo script with each line spoken ``scale`` times (other endings), rendered."""
    script = work / "script.csv"
    with open(REPO / "data" / "demo_script.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(script, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            for k in range(scale):
                writer.writerow({**row, "text": row["text"] + ENDINGS[k % len(ENDINGS)] * (
                    1 + k // len(ENDINGS))})
    return build_demo(script, replace(params.demo, out=str(work / f"demo_x{scale}")))


def bare_loop(config, manifest: Path) -> tuple[float, float]:
    """Frames per second and per CPU second of a single-threaded loop."""
    extractor = FacialExtractor(config)  # a fresh one: its own landmarker, this thread only
    utts = [u for u in read_inputs(manifest) if u.video_path]
    start, cpu = time.perf_counter(), cpu_seconds()
    frames = sum(extractor.extract([u])[0]["n_frames"] for u in utts)
    return frames / (time.perf_counter() - start), frames / (cpu_seconds() - cpu)


def flow(config, extract, manifest: Path, work: Path) -> tuple[float, float, float]:
    """Frames per second end to end and inside the flow run, and frames per CPU second."""
    cache = Path(tempfile.mkdtemp(dir=work))
    start, cpu = time.perf_counter(), cpu_seconds()
    summary = run_extraction("facial", manifest, cache / "out",
                             replace(extract, cache_dir=str(cache)), config)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    frames = sum(pq.read_table(cache / "out" / "facial.parquet")["n_frames"].to_pylist())
    return frames / seconds, frames / summary.seconds, frames / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=4, help="size of the larger demo-like corpus")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpora = {"demo": ("meld", REPO / "data" / "demo"),
                   f"demo x{args.scale}": ("meld", scaled_demo(params, args.scale, work)),
                   "ravdess_av": ("ravdess", REPO.parent / "shared" / "data" / "ravdess_av")}
        print(f"| corpus | clips | bare loop frames/s | flow frames/s end to end | flow / bare | "
              f"per core ({cores}) | inside the flow run | flow / bare | per core | "
              f"per CPU second |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, (kind, root) in corpora.items():
            if not root.is_dir():
                continue
            manifest = work / f"{name.replace(' ', '_')}.parquet"
            write_parquet(prepare_corpus(kind, root, name=name.replace(" ", "_"))[0], manifest)
            flow(params.facial, params.extract, manifest, work)  # warm-up: server, model
            bares, flows = [], []
            for _ in range(args.repeats):  # alternate, so drifts in machine speed hit both
                bares.append(bare_loop(params.facial, manifest))
                flows.append(flow(params.facial, params.extract, manifest, work))
            bare, bare_cpu = (statistics.median(r[i] for r in bares) for i in range(2))
            fast, inner, flow_cpu = (statistics.median(r[i] for r in flows) for i in range(3))
            clips = len(read_inputs(manifest))
            print(f"| {name} | {clips} | {bare:.1f} | {fast:.1f} | {fast / bare:.2f} | "
                  f"{fast / bare / cores:.2f} | {inner:.1f} | {inner / bare:.2f} | "
                  f"{inner / bare / cores:.2f} | {flow_cpu / bare_cpu:.2f} |", flush=True)


if __name__ == "__main__":
    main()

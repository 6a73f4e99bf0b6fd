"""Frames per second of the MediaPipe facial backend, per detector: the flow versus a bare loop.

    python bench/facial.py [--repeats 3] [--scale 4] [--corpora demo,ravdess_av,...]
        [--detectors full_range,short_range]

Bare loop: one extractor (its own landmarker and detector) over the same sampled frames
(``facial.fps``) of every clip, one process, one thread: decode, detect, read the faces, choose
the speaker. Flow: ``mcncl extract facial`` with the default params but ``facial.detector``,
and a fresh cache. Bare and flow runs alternate, and the table gives medians. Corpora: the demo
corpus (72 clips, 640x360), a demo-like corpus ``--scale`` times larger built here (every
script line spoken ``--scale`` times, each a little differently, so every clip is distinct
content), ``../shared/data/ravdess_av`` (18 clips, 640x360) and ``ravdess_av_1080p``: those
clips with their faces 40-120 px high in 1920x1080 frames (``tests/face_scenes.py``).
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
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/face_scenes.py

from mcncl.offline import go_offline

go_offline()

from extractors.corpora import prepare_corpus  # noqa: E402
from extractors.corpora.demo import build_demo  # noqa: E402
from extractors.facial import FacialExtractor  # noqa: E402
from extractors.facial.video import sample_frames  # noqa: E402
from extractors.inputs import read_inputs  # noqa: E402
from flows.extract import run_extraction  # noqa: E402
from mcncl.config import load_params  # noqa: E402
from tests.face_scenes import small_face_scenes  # noqa: E402
from vocabulary.atomic import write_parquet  # noqa: E402

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


def sampled_frames(config, manifest: Path) -> int:
    """The frames the extractor samples from the corpus, faces found or not (``no_face``
    clips are decoded and searched too)."""
    return sum(1 for u in read_inputs(manifest) if u.video_path
               for _ in sample_frames(u.video_path, config.fps, config.max_frames, 64,
                                      u.start_s, u.end_s))


def bare_loop(config, manifest: Path, frames: int) -> tuple[float, float]:
    """Frames per second and per CPU second of a single-threaded loop."""
    extractor = FacialExtractor(config)  # a fresh one: its own landmarker, this thread only
    utts = [u for u in read_inputs(manifest) if u.video_path]
    start, cpu = time.perf_counter(), cpu_seconds()
    extractor.extract(utts)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    extractor.close()
    return frames / seconds, frames / cpu


def flow(config, extract, manifest: Path, work: Path, frames: int) -> tuple[float, float, float]:
    """Frames per second end to end and inside the flow run, and frames per CPU second."""
    cache = Path(tempfile.mkdtemp(dir=work))
    start, cpu = time.perf_counter(), cpu_seconds()
    summary = run_extraction("facial", manifest, cache / "out",
                             replace(extract, cache_dir=str(cache), max_error_rate=1.0), config)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return frames / seconds, frames / summary.seconds, frames / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=4, help="size of the larger demo-like corpus")
    parser.add_argument("--corpora", default="demo,demo_x4,ravdess_av,ravdess_av_1080p")
    parser.add_argument("--detectors", default="full_range,short_range")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ravdess = REPO.parent / "shared" / "data" / "ravdess_av"
        corpora = {"demo": lambda: ("meld", REPO / "data" / "demo"),
                   "demo_x4": lambda: ("meld", scaled_demo(params, args.scale, work)),
                   "ravdess_av": lambda: ("ravdess", ravdess),
                   "ravdess_av_1080p": lambda: ("ravdess", _small_faces(ravdess, work))}
        print(f"| corpus | clips | detector | bare loop frames/s | flow frames/s end to end | "
              f"flow / bare | per core ({cores}) | inside the flow run | flow / bare | "
              f"per core | per CPU second |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name in args.corpora.split(","):
            if name.startswith("ravdess") and not ravdess.is_dir():
                continue
            kind, root = corpora[name]()
            manifest = work / f"{name}.parquet"
            write_parquet(prepare_corpus(kind, root, name=name)[0], manifest)
            for detector in args.detectors.split(","):
                config = replace(params.facial, detector=detector)
                frames = sampled_frames(config, manifest)
                flow(config, params.extract, manifest, work, frames)  # warm-up: server, model
                bares, flows = [], []
                for _ in range(args.repeats):  # alternate, so drifts in machine speed hit both
                    bares.append(bare_loop(config, manifest, frames))
                    flows.append(flow(config, params.extract, manifest, work, frames))
                bare, bare_cpu = (statistics.median(r[i] for r in bares) for i in range(2))
                fast, inner, flow_cpu = (statistics.median(r[i] for r in flows) for i in range(3))
                clips = len(read_inputs(manifest))
                print(f"| {name} | {clips} | {detector} | {bare:.1f} | {fast:.1f} | "
                      f"{fast / bare:.2f} | {fast / bare / cores:.2f} | {inner:.1f} | "
                      f"{inner / bare:.2f} | {inner / bare / cores:.2f} | "
                      f"{flow_cpu / bare_cpu:.2f} |", flush=True)


def _small_faces(ravdess: Path, work: Path) -> Path:
    """RAVDESS's clips with their faces 40-120 px high in 1920x1080 frames, same names."""
    out = work / "ravdess_av_1080p"
    small_face_scenes(sorted(ravdess.glob("*.mp4")), out)
    return out


if __name__ == "__main__":
    main()

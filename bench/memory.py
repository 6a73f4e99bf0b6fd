"""Peak resident memory of each extraction stage at 1x and 4x the demo corpus.

    python bench/memory.py [--scales 1,4]

The demo corpus (72 clips) is built once; the 4x corpus holds 4 copies whose every clip and
transcript differs in content (a tiny gain change re-encodes the audio, the transcript gets a
suffix), so nothing is served from the per-utterance cache or deduplicated. Each stage runs
as DVC runs it, ``mcncl extract <modality>`` in its own process with a fresh cache, reporting
to one Prefect server (so the process measured is the stage alone); its peak RSS comes from
``wait4``. Flat memory means the 4x/1x ratio stays near 1.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extractors.corpora import prepare_corpus  # noqa: E402
from extractors.corpora.csv_corpus import prepare_csv  # noqa: E402
from extractors.corpora.demo import DemoConfig, build_demo  # noqa: E402
from tests.project import prefect_ui  # noqa: E402
from vocabulary import MODALITIES  # noqa: E402
from vocabulary.atomic import write_parquet  # noqa: E402


def scaled_corpus(demo: Path, out: Path, copies: int) -> Path:
    """A csv-kind corpus of ``copies`` content-distinct copies of the demo; its manifest."""
    table, _ = prepare_corpus("meld", demo, name="demo")
    rows = []
    for copy in range(copies):
        for row in table.to_pylist():
            clip = out / "clips" / f"c{copy}_{Path(row['video_path']).name}"
            clip.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i",
                            str(demo / row["video_path"]), "-c:v", "copy", "-af",
                            f"volume={1 + copy / 1000}", "-c:a", "aac", str(clip)], check=True)
            rows.append({"utterance_id": f"c{copy}/{row['utterance_id']}",
                         "text": f"{row['text']} ({copy})", "label": row["label"],
                         "split": row["split"], "audio_path": f"clips/{clip.name}",
                         "video_path": f"clips/{clip.name}"})
    with open(out / "corpus.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    manifest, _ = prepare_csv(out / "corpus.csv", name=f"x{copies}")
    write_parquet(manifest, out / "manifest.parquet")
    return out / "manifest.parquet"


def peak_rss_mb(modality: str, manifest: Path, work: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one extraction stage process."""
    params = work / f"{modality}-params.yaml"
    params.write_text(f"extract: {{cache_dir: {work / (modality + '-cache')}}}\n")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mcncl", "extract", modality, "--manifest",
                             str(manifest), "--out-dir", str(work / "out"), "--params",
                             str(params)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{modality} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,4")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    with tempfile.TemporaryDirectory() as tmp, prefect_ui(Path(tmp) / "prefect-home"):
        demo = build_demo(REPO / "data" / "demo_script.csv", DemoConfig(out=f"{tmp}/demo"))
        peaks = {}
        for scale in scales:
            manifest = scaled_corpus(demo, Path(tmp) / f"x{scale}", scale)
            for modality in MODALITIES:
                work = Path(tmp) / f"run-{scale}-{modality}"
                work.mkdir()
                mb, seconds = peak_rss_mb(modality, manifest, work)
                peaks[scale, modality] = mb
                print(f"{modality:9s} {72 * scale:4d} utterances: peak RSS {mb:7.1f} MB "
                      f"({seconds:.1f} s)", flush=True)
        for modality in MODALITIES:
            ratio = peaks[scales[-1], modality] / peaks[scales[0], modality]
            print(f"{modality:9s} peak RSS {scales[-1]}x / {scales[0]}x: {ratio:.2f}")


if __name__ == "__main__":
    main()

"""Throughput of the extractors: a plain single-process loop versus the Prefect flow.

    python bench/extract.py [--corpus demo|ravdess|meld|all] [--repeats 3]

For each corpus and modality: the extractor called directly in a plain loop (acoustic: one
utterance at a time in one thread; text: batches of ``text.batch_size``), then the flow with
the default params (fresh cache). Prints medians of utterances per second and their ratio.
Text on RAVDESS is cached by content and RAVDESS has two distinct sentences, so the flow
computes 2 texts there; MELD (text only) is the fair text comparison. The flow's one-off
start (Prefect's temporary API server, ~5 s) is measured apart by a warm-up run and reported
on its own line.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mcncl.offline import go_offline

go_offline()

from extractors.base import Failure  # noqa: E402
from extractors.corpora import prepare_corpus  # noqa: E402
from extractors.inputs import read_inputs  # noqa: E402
from flows.extract import get_extractor, run_extraction  # noqa: E402
from mcncl.config import load_params  # noqa: E402
from vocabulary.atomic import write_parquet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CORPORA = {  # name: (adapter, root, modalities)
    "demo": ("meld", REPO / "data" / "demo", ("acoustic", "text")),
    "ravdess": ("ravdess", SHARED / "ravdess_speech", ("acoustic", "text")),
    "meld": ("meld", SHARED / "meld", ("text",)),  # 11,098 distinct texts (RAVDESS has 2)
}


def plain_loop(modality: str, config, manifest: Path) -> float:
    extractor = get_extractor(modality, config)
    utts = [u for u in read_inputs(manifest) if not isinstance(extractor.digest(u), Failure)]
    step = config.batch_size if modality == "text" else 1
    start = time.perf_counter()
    for i in range(0, len(utts), step):
        extractor.extract(utts[i:i + step])
    return len(utts) / (time.perf_counter() - start)


def flow_run(modality: str, config, extract, manifest: Path, work: Path) -> tuple[float, float]:
    """Utterances per second end to end, and inside the flow run (without its set-up)."""
    cache = Path(tempfile.mkdtemp(dir=work))
    start = time.perf_counter()
    summary = run_extraction(modality, manifest, cache / "out",
                             replace(extract, cache_dir=str(cache)), config)
    return summary.total / (time.perf_counter() - start), summary.total / summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=[*CORPORA, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    names = list(CORPORA) if args.corpus == "all" else [args.corpus]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifests = {}
        for name in names:
            kind, root, _ = CORPORA[name]
            table, _ = prepare_corpus(kind, root, name=name)
            manifests[name] = work / f"{name}.parquet"
            write_parquet(table, manifests[name])
        started = time.perf_counter()
        flow_run("text", params.text, params.extract, manifests[names[0]], work)
        print(f"one-off flow start (Prefect server, model load, warm-up run): "
              f"{time.perf_counter() - started:.1f} s")
        print("| corpus | modality | utterances | plain loop utt/s | flow utt/s end to end | "
              "flow / plain | inside the flow run | flow / plain |")
        print("|---|---|---|---|---|---|---|---|")
        for name in names:
            n = len(read_inputs(manifests[name]))
            for modality in CORPORA[name][2]:
                config = getattr(params, modality)
                plain = statistics.median(plain_loop(modality, config, manifests[name])
                                          for _ in range(args.repeats))
                runs = [flow_run(modality, config, params.extract, manifests[name], work)
                        for _ in range(args.repeats)]
                flow = statistics.median(r[0] for r in runs)
                inner = statistics.median(r[1] for r in runs)
                print(f"| {name} | {modality} | {n} | {plain:.1f} | {flow:.1f} | "
                      f"{flow / plain:.2f} | {inner:.1f} | {inner / plain:.2f} |", flush=True)


if __name__ == "__main__":
    main()

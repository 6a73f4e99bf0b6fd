"""Text extraction speed of two encoders side by side: the packaged MiniLM and a local folder.

    python bench/text_models.py --model data/encoders/all-mpnet-base-v2 [--repeats 3]

MELD's dev transcripts (``../shared/data/meld``, 1,109 utterances) through the text extractor
in a plain loop (batches of ``text.batch_size``, the params.yaml text settings otherwise), the
two models taking turns on each repeat. Prints the medians of utterances per second and their
ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from mcncl.offline import go_offline

go_offline()

import pyarrow.compute as pc  # noqa: E402
from extract import REPO, SHARED, plain_loop  # noqa: E402

from extractors.configs import PACKAGED_MODEL  # noqa: E402
from extractors.corpora import prepare_corpus  # noqa: E402
from mcncl.config import load_params  # noqa: E402
from vocabulary.atomic import write_parquet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a local sentence-transformers folder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    text = load_params(REPO / "params.yaml").text
    configs = {PACKAGED_MODEL: replace(text, model=PACKAGED_MODEL),
               args.model: replace(text, model=str(Path(args.model).resolve()))}
    with tempfile.TemporaryDirectory() as tmp:
        table, _ = prepare_corpus("meld", SHARED / "meld", name="meld")
        manifest = Path(tmp) / "meld-dev.parquet"
        write_parquet(table.filter(pc.equal(table["split"], "dev")), manifest)
        speeds = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, config in configs.items():
                speeds[name].append(plain_loop("text", config, manifest))
    base = statistics.median(speeds[PACKAGED_MODEL])
    print("| model | utterances/s (median) | relative to MiniLM |")
    print("|---|---|---|")
    for name, runs in speeds.items():
        print(f"| {Path(name).name} | {statistics.median(runs):.1f} | "
              f"{statistics.median(runs) / base:.2f} |")


if __name__ == "__main__":
    main()

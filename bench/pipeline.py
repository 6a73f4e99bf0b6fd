"""The whole DVC pipeline on the demo corpus: a first ``dvc repro`` and no-op reruns.

    python bench/pipeline.py [--noop-runs 5] [--ui]

Copies the project (code, dvc.yaml, params.yaml, the demo script; no data, no cache) into a
temporary git + DVC repo, as a fresh clone is, then times:

- the first ``dvc repro``: every stage from the demo corpus to the metrics (target < 10 min
  on 2 cores, the ``make demo`` budget);
- a no-op ``dvc repro`` and a ``dvc status`` with nothing changed (target < 5 s), median of
  ``--noop-runs`` runs.

The first stage starts the shared Prefect server in the background (mcncl/server.py); later
stages report to it. ``--ui`` first starts the server (as ``make ui`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.project import copy_project, prefect_ui, run_in  # noqa: E402


def timed(project: Path, *cmd: str) -> float:
    start = time.perf_counter()
    result = run_in(project, *cmd)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noop-runs", type=int, default=5)
    parser.add_argument("--ui", action="store_true", help="run the stages against a server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.ui:
            stack.enter_context(prefect_ui(Path(tmp) / "prefect-home"))
        project = copy_project(Path(tmp) / "project")
        first = timed(project, "dvc", "repro")
        print(f"first dvc repro (whole graph, demo corpus): {first:.1f} s")
        for cmd in (["dvc", "repro"], ["dvc", "status"]):
            runs = [timed(project, *cmd) for _ in range(args.noop_runs)]
            print(f"no-op {' '.join(cmd)}: median {statistics.median(runs):.2f} s "
                  f"(min {min(runs):.2f}, max {max(runs):.2f}, {len(runs)} runs)")


if __name__ == "__main__":
    main()

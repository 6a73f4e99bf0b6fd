"""The fixed cost of one stage process: ``mcncl evaluate --corpus demo``, whole, wall time.

    python bench/stage_overhead.py [--project .] [--runs 5] [--baseline DIR]

With the shared Prefect server running (``mcncl ui``, in a Prefect home of its own, started and
migrated before timing), medians of ``--runs``, run side by side (alternated, so that they
share the machine's state):

- ``mcncl evaluate --corpus demo``, a plain process (this checkout, and ``--baseline DIR``'s
  code if given, e.g. ``git archive <rev> | tar -x -C DIR``, pointed at the server by
  ``PREFECT_API_URL`` and run with ``MCNCL_WARM=0``, so a baseline that still has the warm
  worker runs in its own process too);
- ``python -c "import torch, prefect"``, the floor: a stage process imports both.

``--project`` is a folder holding ``params.yaml`` and the built demo (``data/tensors/demo``,
``data/models/demo/model.safetensors``: ``make demo``). Prints a markdown table, the ratio of
each evaluate row to the floor, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.project import free_port  # noqa: E402

EVALUATE = ["-m", "mcncl", "evaluate", "--corpus", "demo"]
FLOOR = ["-c", "import torch, prefect"]


def run(code: Path, project: Path, env: dict, args: list[str]) -> float:
    """Wall seconds of ``python <args>`` with ``code`` first on the import path."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=project, capture_output=True,
                            text=True, env={**env, "PYTHONPATH": str(code)})
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"python {' '.join(args)} failed:\n{result.stderr}")
    return wall


def measure(codes: dict[str, Path], project: Path, env: dict, api_url: str,
            runs: int) -> dict[str, list]:
    """Each row's wall times; the rows alternate, in turn first."""
    rows = {f"`mcncl evaluate`, {name}": (code, EVALUATE, env if code == REPO else
                                          {**env, "PREFECT_API_URL": api_url})
            for name, code in codes.items()}
    rows["`python -c 'import torch, prefect'` (floor)"] = (REPO, FLOOR, env)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for code, args, row_env in rows.values():  # untimed: the server and the caches settle
        run(code, project, row_env, args)
    for i in range(runs):
        for name in list(rows)[::1 if i % 2 == 0 else -1]:
            code, args, row_env = rows[name]
            times[name].append(run(code, project, row_env, args))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=REPO)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="other code to time side by side")
    args = parser.parse_args()
    project = args.project.resolve()
    if not (project / "data/models/demo/model.safetensors").is_file():
        raise SystemExit(f"{project}: no trained demo model; build it first with `make demo` "
                         "(or `dvc repro evaluate@demo`).")
    codes = {"this checkout": REPO}
    if args.baseline:
        codes["baseline"] = args.baseline.resolve()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PYTHONPATH")}
        env.update(PREFECT_HOME=home, MCNCL_WARM="0")
        ui, port = ["-m", "mcncl", "ui"], free_port()
        run(REPO, project, env, [*ui, "--port", str(port)])
        load = os.getloadavg()[0]
        try:
            times = measure(codes, project, env, f"http://127.0.0.1:{port}/api", args.runs)
        finally:
            run(REPO, project, env, [*ui, "--stop"])
    floor = statistics.median(list(times.values())[-1])
    print("| process, shared server running | median wall s | ratio to the floor | runs "
          "(wall s) |\n|---|---|---|---|")
    for name, walls in times.items():
        median = statistics.median(walls)
        print(f"| {name} | {median:.2f} | {median / floor:.2f} | "
              f"{' '.join(f'{w:.2f}' for w in walls)} |")
    print(f"\nload average (1 min) before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()

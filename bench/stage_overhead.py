"""The fixed cost of one stage process: ``mcncl evaluate --corpus demo``, whole, wall time.

    python bench/stage_overhead.py [--project .] [--runs 5] [--baseline DIR]

Times, as medians of ``--runs``, in a Prefect home of its own (migrated before timing starts):

- ``mcncl evaluate --corpus demo`` with no server running (this checkout starts the shared
  background server, stopped again after each run and not timed; older code starts Prefect's
  temporary server inside the process);
- the same with the shared server already running (``mcncl ui``), the command run by its
  warm worker (mcncl/warm.py) and, side by side, in a process of its own (``MCNCL_WARM=0``);
- ``python -c "import torch"``, the floor: evaluate needs torch.

``--project`` is a folder holding ``params.yaml`` and the built demo (``data/tensors/demo``,
``data/models/demo/model.safetensors``: ``make demo``). ``--baseline DIR`` adds the same rows
for other code, e.g. ``git archive <rev> | tar -x -C DIR``, the runs of both alternated, so
that before and after share the machine's state. Prints a markdown table and the load average;
CPU seconds are the timed process's own (not the background server's).
"""

from __future__ import annotations

import argparse
import os
import resource
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


def run(code: Path, project: Path, env: dict, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``python <args>`` with ``code`` first on the import path."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=project, capture_output=True,
                            text=True, env={**env, "PYTHONPATH": str(code)})
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"python {' '.join(args)} failed:\n{result.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ui(project: Path, env: dict, *args: str) -> None:
    run(REPO, project, env, ["-m", "mcncl", "ui", *args])


def measure(codes: dict[str, Path], project: Path, env: dict, runs: int) -> list[list[str]]:
    """Every row's runs; the codes' runs alternate, in turn first."""
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def timed(case: str, name: str, args: list[str], **extra: str) -> None:
        code = codes.get(name, REPO)
        times.setdefault((case, name), []).append(run(code, project, {**env, **extra}, args))

    for i in range(runs):
        for name in list(codes)[::1 if i % 2 == 0 else -1]:
            ui(project, env, "--stop")
            timed("no server running", name, EVALUATE)
    ui(project, env, "--stop")
    ui(project, env, "--port", str(free_port()))
    run(REPO, project, env, EVALUATE)  # untimed: the new server settles
    warm = Path(env["PREFECT_HOME"]) / "mcncl-ui.warm"
    deadline = time.monotonic() + 120
    while not warm.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    for i in range(runs):
        for name in list(codes)[::1 if i % 2 == 0 else -1]:
            timed("server running", name, EVALUATE)
        timed("server running, MCNCL_WARM=0", "this checkout", EVALUATE, MCNCL_WARM="0")
        timed("python -c 'import torch'", "-", ["-c", "import torch"])
    ui(project, env, "--stop")
    rows = []
    for (case, name), pairs in times.items():
        walls = [wall for wall, _ in pairs]
        rows.append([case, name, f"{statistics.median(walls):.1f}",
                     f"{statistics.median(cpu for _, cpu in pairs):.1f}",
                     " ".join(f"{w:.1f}" for w in walls)])
    return rows


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
        env = {k: v for k, v in os.environ.items()
               if k not in ("PREFECT_API_URL", "MCNCL_EPHEMERAL_SERVER", "PYTHONPATH")}
        env["PREFECT_HOME"] = home
        ui(project, env, "--port", str(free_port()))  # the database, made before any timing
        ui(project, env, "--stop")
        load = os.getloadavg()[0]
        rows = measure(codes, project, env, args.runs)
    print("| process | code | median wall s | median CPU s | runs (wall s) |\n"
          "|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nload average (1 min) before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()

"""``mcncl pipeline``: the whole DVC graph as one Prefect flow, for runs started from the UI.

One task per stage of ``dvc.yaml`` (in file order), each a ``dvc repro <stage>``, so DVC
still decides what is up to date and records it in ``dvc.lock``. The stages' own flow runs
(``train-demo`` ...) report to the same Prefect server as this one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client

from flows.errors import PipelineFailed


def stage_names(dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    if not dvc_yaml.is_file():
        raise PipelineFailed(f"{dvc_yaml.resolve()}: not found; run the pipeline from the "
                             "project folder (where dvc.yaml is).")
    return list((yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}))


@task(task_run_name="dvc-repro-{stage}", cache_policy=NO_CACHE)
def repro_stage(stage: str, force: bool, api_url: str) -> list[str]:
    """``dvc repro`` one stage (a foreach stage: for every corpus); the stages it ran."""
    command = ["dvc", "repro", *(["--force", "--single-item"] if force else []), stage]
    tools = str(Path(sys.executable).parent)  # dvc and mcncl, also when .venv is not activated
    env = {**os.environ, "PREFECT_API_URL": api_url,
           "PATH": os.pathsep.join([tools, os.environ.get("PATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, env=env)  # env's PATH
    logger = get_run_logger()
    for line in (result.stdout + result.stderr).splitlines():
        if line.strip():
            logger.info(line)
    if result.returncode != 0:
        raise PipelineFailed(f"`{' '.join(command)}` failed: {dvc_error(result.stderr)}")
    return re.findall(r"Running stage '([^']+)'", result.stdout)


def dvc_error(stderr: str) -> str:
    """DVC's own error, whole (e.g. which process holds the lock), on one line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("ERROR")), -3)
    return " ".join(lines[start:])


@flow(name="pipeline", flow_run_name="pipeline", log_prints=True)
def pipeline_flow(stages: list[str] | None = None, force: bool = False) -> list[str]:
    """Bring ``stages`` (default: every stage of dvc.yaml) up to date, in pipeline order."""
    known = stage_names()
    unknown = sorted(set(stages or []) - set(known))
    if unknown:
        raise PipelineFailed(f"unknown stage(s) {', '.join(unknown)}; dvc.yaml has "
                             f"{', '.join(known)}.")
    with get_client(sync_client=True) as client:
        api_url = str(client.api_url).rstrip("/")
    ran: list[str] = []
    for stage in [s for s in known if not stages or s in stages]:
        ran += repro_stage(stage, force, api_url)
    return ran

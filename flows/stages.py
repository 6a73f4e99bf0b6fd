"""The DVC stages besides extraction, each run as a Prefect flow.

Every stage shows in the Prefect UI the same way: a flow run named after the stage
(``train-demo``), tagged ``corpus:<name>`` and ``stage:<stage>``, one task run doing the work
and a markdown artifact with the stage's summary table. Under ``torchrun`` only rank 0
reports, so a multi-process training run is one flow run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

from prefect import flow, tags, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

T = TypeVar("T")
Rows = list[dict[str, object]]


def markdown_table(rows: Rows) -> str:
    if not rows:
        return "(nothing)\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@task(task_run_name="{stage}", cache_policy=NO_CACHE)
def _stage_work(stage: str, work: Callable[[], T]) -> T:
    return work()


@flow(log_prints=True)
def _stage_flow(stage: str, corpus: str, work: Callable[[], T],
                summary: Callable[[T], Rows]) -> T:
    result = _stage_work.with_options(name=stage)(stage, work)
    key = re.sub(r"[^a-z0-9-]+", "-", f"{stage}-{corpus}".lower())
    create_markdown_artifact(markdown_table(summary(result)), key=key,
                             description=f"{stage} of {corpus}")
    return result


def run_stage(stage: str, corpus: str, work: Callable[[], T],
              summary: Callable[[T], Rows]) -> T:
    """Run ``work()`` as the flow run ``<stage>-<corpus>``; ``summary`` makes its artifact."""
    if int(os.environ.get("RANK", "0")) > 0:
        return work()
    with tags(f"corpus:{corpus}", f"stage:{stage}"):
        return _stage_flow.with_options(name=stage, flow_run_name=f"{stage}-{corpus}")(
            stage, corpus, work, summary)

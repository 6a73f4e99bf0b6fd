"""Where shards run: threads on this machine (default) or a Dask cluster (prefect-dask)."""

from __future__ import annotations

import os
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from extractors.registry import OVERLAPPING_WORKERS


def worker_count(modality: str, config: Any) -> int:
    """A modality's ``workers`` setting made concrete: 0 = one per core (plus any overlap); a
    config without one (text: torch already uses every core) runs one worker."""
    workers = getattr(config, "workers", 1)
    return workers or (os.cpu_count() or 1) + OVERLAPPING_WORKERS.get(modality, 0)


def make_task_runner(runner: str, workers: int, dask_address: str = "") -> TaskRunner:
    """Threads suffice locally: openSMILE, PyAV, MediaPipe and torch release the GIL in their
    native code, so both cores stay busy without process start-up costs. ``dask`` with
    ``dask_address`` joins an existing cluster; without, it starts a local cluster of
    ``workers`` single-threaded processes."""
    if runner == "local":
        return ThreadPoolTaskRunner(max_workers=workers)
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
        )
    raise ValueError(f"extract.runner {runner!r} is unknown; use 'local' or 'dask'.")

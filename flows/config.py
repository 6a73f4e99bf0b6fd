"""How every extraction stage runs: the flow's own settings (``extract`` in params.yaml).

Apart from the flow so that reading params imports no Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractConfig:
    """How every extraction stage runs (not what it computes: that is in its own section)."""

    max_error_rate: float = 0.25  # the stage fails past this share of failed utterances
    retries: int = 2  # retries of a failed shard (transient faults)
    runner: str = "local"  # local (threads) | dask
    dask_address: str = ""  # dask: an existing scheduler, e.g. tcp://10.0.0.5:8786
    cache_dir: str = "data/cache"  # per-utterance results, keyed by input, config and version

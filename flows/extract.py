"""The extraction flow: one pattern for every modality.

manifest → inputs and content digests → cache lookup → shards of what is not cached →
a Prefect task mapped over the shards (retried on failure) → every finished shard cached at
once → feature table and error table written atomically → summary. The stage fails only when
the share of failed utterances passes ``max_error_rate``.
"""

from __future__ import annotations

import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, tags, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TagsContext
from prefect.futures import as_completed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from extractors.base import (
    Extractor,
    Failure,
    UtteranceInput,
    config_hash,
    model_files_signature,
)
from extractors.inputs import read_inputs
from extractors.registry import make_extractor
from flows.cache import ResultCache, cache_key
from flows.config import ExtractConfig
from flows.errors import TooManyErrors
from flows.runners import make_task_runner, worker_count
from flows.tables import write_stage_tables

RETRY_DELAY_S = 1.0  # seconds before a failed shard is retried (extract.retries)


@dataclass
class Summary:
    modality: str
    total: int = 0
    computed: int = 0
    cached: int = 0
    failed: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    features_path: str = ""
    errors_path: str = ""
    details: str = ""  # the extractor's own figures (facial: face coverage), markdown

    def markdown(self) -> str:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.kinds.items())) or "none"
        return (f"| {self.modality} | utterances | computed | cached | failed | seconds |\n"
                f"|---|---|---|---|---|---|\n"
                f"| | {self.total} | {self.computed} | {self.cached} | {self.failed} | "
                f"{self.seconds:.1f} |\n\nFailures by kind: {kinds}\n"
                + (f"\n{self.details}" if self.details else ""))


def get_extractor(modality: str, config: Any) -> Extractor:
    """One extractor per process, config and model files: models load once, also on each Dask
    worker, and again when a model folder's files change (a fine-tuned model saved over it)."""
    return _loaded_extractor(modality, config, model_files_signature(config))


@functools.lru_cache(maxsize=4)
def _loaded_extractor(modality: str, config: Any, signature: tuple) -> Extractor:
    return make_extractor(modality, config)


@task(name="extract-shard", task_run_name="{modality}-shard-{index}", cache_policy=NO_CACHE,
      persist_result=False)
def extract_shard(modality: str, config: Any, index: int, utts: list[UtteranceInput]) -> list:
    return get_extractor(modality, config).extract(utts)


@flow(name="extract", flow_run_name="extract-{modality}-{corpus}", log_prints=True)
def extract_flow(
    modality: str, corpus: str, manifest: Path, out_dir: Path, config: ExtractConfig,
    extractor_config: Any,
) -> Summary:
    """Extract one modality's features for every utterance of ``manifest`` into ``out_dir``."""
    started = time.perf_counter()
    extractor = get_extractor(modality, extractor_config)
    summary = Summary(modality)
    utts = read_inputs(manifest, getattr(extractor, "history", 0))
    summary.total = len(utts)
    cache = ResultCache(config.cache_dir, modality, extractor.schema)
    chash = config_hash(extractor_config)
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashing media is I/O bound
        digests = list(pool.map(extractor.digest, utts))
    # Each utterance's key: its cache key, or the Failure that its input already is.
    keys: dict[str, str | Failure] = {}
    todo: dict[str, UtteranceInput] = {}  # one input per distinct key: duplicates compute once
    for utt, digest in zip(utts, digests, strict=True):
        if isinstance(digest, Failure):
            keys[utt.utterance_id] = digest
            continue
        key = keys[utt.utterance_id] = cache_key(digest, chash, extractor.version)
        if cache.has(key):
            summary.cached += 1
        else:
            todo.setdefault(key, utt)
    uncached = _run_shards(modality, extractor_config, config, cache, todo, summary)
    errors = _write_outputs(utts, keys, uncached, cache, extractor, out_dir, summary)
    summary.seconds = time.perf_counter() - started
    summarize = getattr(extractor, "summarize", None)
    if summarize is not None:
        summary.details = summarize(Path(summary.features_path))
        print(summary.details)
    create_markdown_artifact(summary.markdown(), key=f"extract-{modality}",
                             description=f"{modality} extraction of {corpus}")
    _check_error_rate(len(utts), errors, config.max_error_rate, modality)
    return summary


def _run_shards(
    modality: str, extractor_config: Any, config: ExtractConfig, cache: ResultCache,
    todo: dict[str, UtteranceInput], summary: Summary,
) -> dict[str, Failure]:
    """Compute ``todo`` shard by shard, caching each result; return the uncacheable failures."""
    uncached: dict[str, Failure] = {}
    extractor = get_extractor(modality, extractor_config)
    items = sorted(todo.items(), key=lambda item: extractor.cost(item[1]), reverse=True)
    workers = worker_count(modality, extractor_config)
    shards = split_shards(items, extractor_config.shard_size, workers)
    shard_task = extract_shard.with_options(retries=config.retries,
                                            retry_delay_seconds=RETRY_DELAY_S)
    # The shards' task runs carry no tags (the flow run has them): a tagged task run asks the
    # API for a concurrency slot per tag as it starts, which stalls every worker for seconds
    # whenever the server is busy.
    with TagsContext(current_tags=set()):
        futures = {
            shard_task.submit(modality, extractor_config, i, [utt for _, utt in shard]): shard
            for i, shard in enumerate(shards)
        }
    columns = [BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(f"[bold]{modality}[/]", *columns, transient=True) as progress:
        bar = progress.add_task(modality, total=len(items))
        for future in as_completed(list(futures)):
            shard = futures[future]
            try:
                results = future.result()
            except Exception as exc:  # the shard failed on every retry: record, do not cache
                results = [Failure("internal", f"{utt.audio_path or utt.video_path or ''}: "
                                   f"{type(exc).__name__}: {exc}") for _, utt in shard]
            for (key, _), result in zip(shard, results, strict=True):
                cache.put(key, result)
                if isinstance(result, Failure) and not cache.has(key):
                    uncached[key] = result
            summary.computed += len(shard)
            progress.advance(bar, len(shard))
    return uncached


def split_shards(items: list, largest: int, workers: int) -> list[list]:
    """Near-equal shards of at most ``largest`` items. With several workers: at least four
    shards per worker, and a multiple of the workers, so the last round keeps all of them busy.
    The items come costliest first, so the shards that finish the run are the quick ones."""
    n = len(items)
    count = math.ceil(n / largest)
    if workers > 1:
        count = workers * math.ceil(max(count, 4 * workers) / workers)
    count = min(count, n)
    return [items[i * n // count:(i + 1) * n // count] for i in range(count)]


def _write_outputs(
    utts: list[UtteranceInput], keys: dict[str, str | Failure], uncached: dict[str, Failure],
    cache: ResultCache, extractor: Extractor, out_dir: Path, summary: Summary,
) -> list[dict]:
    """Stream every utterance's result from the cache into the two tables; return the errors."""

    def result_of(key: str | Failure) -> pa.Table | Failure:
        if isinstance(key, Failure):
            return key
        result = uncached.get(key) or cache.get(key)
        return result or Failure("internal", "the cached result is unreadable; rerun the stage.")

    features, error_file, errors = write_stage_tables(
        ((utt.utterance_id, result_of(keys[utt.utterance_id])) for utt in utts), extractor,
        out_dir)
    summary.failed = len(errors)
    summary.kinds = {}
    for e in errors:
        summary.kinds[e["kind"]] = summary.kinds.get(e["kind"], 0) + 1
    summary.features_path, summary.errors_path = str(features), str(error_file)
    return errors


def _check_error_rate(total: int, errors: list[dict], max_rate: float, modality: str) -> None:
    """``no_media`` rows were already reported by the manifest and do not count here."""
    counted = [e for e in errors if e["kind"] != "no_media"]
    attempted = total - (len(errors) - len(counted))
    if attempted and len(counted) / attempted > max_rate:
        worst = "; ".join(f"{e['utterance_id']} ({e['kind']}): {e['message']}"
                          for e in counted[:5])
        raise TooManyErrors(
            f"{modality}: {len(counted)} of {attempted} utterances failed "
            f"({len(counted) / attempted:.0%} > extract.max_error_rate = {max_rate:.0%}); "
            f"fix these files or raise the limit. First failures: {worst}"
        )


def run_extraction(
    modality: str, manifest: Path, out_dir: Path, config: ExtractConfig, extractor_config: Any
) -> Summary:
    """Run :func:`extract_flow` with the task runner that ``config`` asks for."""
    corpus = pq.read_table(manifest, columns=["corpus"]).column(0)
    corpus_name = corpus[0].as_py() if len(corpus) else manifest.stem
    workers = worker_count(modality, extractor_config)
    runner = make_task_runner(config.runner, workers, config.dask_address)
    with tags(f"corpus:{corpus_name}", f"stage:extract_{modality}"):
        return extract_flow.with_options(task_runner=runner)(
            modality, corpus_name, manifest, out_dir, config, extractor_config
        )

"""The extraction flow, run for real: Prefect, openSMILE, the cache, DuckDB on the outputs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import flows.extract
from flows.config import ExtractConfig
from flows.extract import TooManyErrors, run_extraction
from tests.media import egemaps, make_speech, make_speech_corpus

BAD = {"zero.mp4": b"", "text.mp4": b"this is not a video"}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_speech_corpus(tmp_path / "corpus", 8, BAD)


def run(manifest: Path, tmp_path: Path, acoustic=egemaps(workers=2), **extract):
    config = ExtractConfig(cache_dir=str(tmp_path / "cache"), **extract)
    return run_extraction("acoustic", manifest, tmp_path / "out", config,
                          replace(acoustic, shard_size=3))


def test_flow_writes_features_and_error_rows(corpus: Path, tmp_path: Path):
    summary = run(corpus, tmp_path)
    assert (summary.total, summary.computed, summary.cached, summary.failed) == (10, 10, 0, 2)
    features = tmp_path / "out" / "acoustic.parquet"
    table = pq.read_table(features)
    assert table["utterance_id"].to_pylist() == [f"u{i:03d}" for i in range(8)]  # manifest order
    assert table.schema.metadata[b"extractor"] == b"acoustic"
    assert b"eGeMAPSv02" in table.schema.metadata[b"config"]
    shapes = duckdb.sql(f"select distinct len(functionals), len(lld[1]) from '{features}'")
    assert shapes.fetchall() == [(88, 25)]
    errors = duckdb.sql(f"select utterance_id, stage, kind, message from "
                        f"'{tmp_path}/out/errors/acoustic.parquet' order by 1").fetchall()
    assert [e[:3] for e in errors] == [("text", "acoustic", "unreadable"),
                                       ("zero", "acoustic", "unreadable")]
    assert "text.mp4: cannot decode audio" in errors[0][3]
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_adding_one_clip_computes_one_and_config_change_recomputes(corpus: Path, tmp_path):
    run(corpus, tmp_path)
    before = pq.read_table(tmp_path / "out" / "acoustic.parquet")
    root = corpus.parent
    make_speech(root / "clips" / "new.wav", "A brand new clip arrives.")
    with open(root / "corpus.csv", "a", encoding="utf-8") as fh:
        fh.write("new,A brand new clip arrives.,a,dev,clips/new.wav\n")
    from extractors.corpora.csv_corpus import prepare_csv
    from vocabulary.atomic import write_parquet

    write_parquet(prepare_csv(root / "corpus.csv", name="speech")[0], corpus)
    again = run(corpus, tmp_path)
    assert (again.total, again.computed, again.cached) == (11, 1, 10)
    after = pq.read_table(tmp_path / "out" / "acoustic.parquet")
    assert after.slice(0, 8).equals(before)  # the cached rows are the same values
    coarser = run(corpus, tmp_path, acoustic=egemaps(lld_hop_ms=20))
    assert (coarser.computed, coarser.cached) == (11, 0)


def test_error_rate_limit_names_the_files_and_keeps_outputs(corpus: Path, tmp_path: Path):
    with pytest.raises(TooManyErrors, match=r"2 of 10 utterances failed \(20% > "
                       r"extract.max_error_rate = 10%\).*zero \(unreadable\)"):
        run(corpus, tmp_path, max_error_rate=0.1)
    assert pq.read_table(tmp_path / "out" / "errors" / "acoustic.parquet").num_rows == 2


class FlakyOnce:
    """A test double for a transient fault (e.g. a network share hiccup): the first call fails."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def extract(self, utts):
        self.calls += 1
        if self.calls == 1:
            raise OSError("share temporarily unavailable")
        return self.real.extract(utts)


def test_transient_fault_is_retried_or_recorded_not_cached(corpus, tmp_path, monkeypatch):
    real = flows.extract.get_extractor("acoustic", egemaps(workers=1))
    flaky = FlakyOnce(real)
    monkeypatch.setattr(flows.extract, "get_extractor", lambda *a: flaky)
    monkeypatch.setattr(flows.extract, "RETRY_DELAY_S", 0)
    retried = run(corpus, tmp_path, acoustic=egemaps(workers=1), retries=1)
    assert (retried.failed, flaky.calls) == (2, 5)  # 4 shards, one retried once
    shutil.rmtree(tmp_path / "cache")
    flaky.calls = 0
    summary = run(corpus, tmp_path, acoustic=egemaps(workers=1), retries=0,
                  max_error_rate=1.0)
    kinds = pq.read_table(tmp_path / "out" / "errors" / "acoustic.parquet")["kind"].to_pylist()
    # 10 utterances in shards of 2, 3, 2, 3: the first shard's two fail as ``internal``
    assert kinds.count("internal") == 2 and kinds.count("unreadable") == 2
    assert summary.failed == 4
    monkeypatch.setattr(flows.extract, "get_extractor", lambda *a: real)
    healed = run(corpus, tmp_path, acoustic=egemaps(workers=1))
    assert (healed.computed, healed.failed) == (2, 2)  # the internal failures were not cached


def test_dask_runner_on_a_two_worker_local_cluster(corpus: Path, tmp_path: Path):
    from distributed import LocalCluster

    reference = run(corpus, tmp_path / "local")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        summary = run(corpus, tmp_path / "dask", runner="dask",
                      dask_address=cluster.scheduler_address)
    assert (summary.computed, summary.failed) == (reference.computed, reference.failed)
    local = pq.read_table(tmp_path / "local" / "out" / "acoustic.parquet")
    dask = pq.read_table(tmp_path / "dask" / "out" / "acoustic.parquet")
    assert local.equals(dask)


def test_sigkill_midway_then_rerun_reuses_work_and_matches(tmp_path: Path):
    manifest = make_speech_corpus(tmp_path / "corpus", 40)
    params = tmp_path / "params.yaml"
    params.write_text(f"extract:\n  cache_dir: {tmp_path / 'cache'}\n"
                      "acoustic:\n  feature_set: eGeMAPSv02\n  workers: 1\n  shard_size: 1\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mcncl", "extract", "acoustic", "--manifest",
               str(manifest), "--out-dir", str(out), "--params", str(params)]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    entries = []
    deadline = time.time() + 120
    while len(entries) < 8 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
        entries = list((tmp_path / "cache").rglob("*.arrow"))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 8 <= len(entries) < 40, "the run finished before it could be killed"
    assert not (out / "acoustic.parquet").exists()  # no partial file under the final name
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    cached = len(entries)
    assert "computed" in resumed.stderr
    reference = run(manifest, tmp_path / "reference")
    assert reference.computed == 40
    assert pq.read_table(out / "acoustic.parquet").equals(
        pq.read_table(tmp_path / "reference" / "out" / "acoustic.parquet"))
    summary_line = [line for line in resumed.stderr.splitlines() if "│" in line][-1]
    numbers = [int(x) for x in summary_line.replace("│", " ").split()[:3]]
    assert numbers[0] == 40 and numbers[2] >= cached and numbers[1] == 40 - numbers[2]


def test_digest_failures_are_error_rows_not_computed(tmp_path: Path):
    manifest = make_speech_corpus(tmp_path / "corpus", 2)
    os.remove(tmp_path / "corpus" / "clips" / "u001.wav")
    summary = run(manifest, tmp_path, acoustic=egemaps(workers=1),
                  max_error_rate=1.0)
    assert (summary.computed, summary.failed, summary.kinds) == (1, 1, {"missing_file": 1})


@pytest.mark.parametrize(("n", "largest", "workers", "count"),
                         [(72, 8, 2, 10), (720, 16, 2, 46), (5, 16, 2, 5), (72, 256, 1, 1),
                          (0, 8, 2, 0)])
def test_split_shards_balances_workers(n, largest, workers, count):
    items = list(range(n))
    shards = flows.extract.split_shards(items, largest, workers)
    sizes = [len(shard) for shard in shards]
    assert len(shards) == count and sum(shards, []) == items
    assert not sizes or (max(sizes) <= largest and max(sizes) - min(sizes) <= 1)


def test_worker_count_adds_an_overlapping_facial_worker():
    from extractors.configs import AcousticConfig, FacialConfig, TextConfig
    from flows.runners import worker_count

    cores = os.cpu_count()
    assert (worker_count("facial", FacialConfig(workers=0)),
            worker_count("acoustic", AcousticConfig(workers=0))) == (cores + 1, cores)
    assert worker_count("facial", FacialConfig(workers=2)) == 2  # an explicit setting is kept
    assert worker_count("text", TextConfig()) == 1  # no setting: torch uses every core

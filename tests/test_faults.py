"""Faults mid-run: SIGKILL during extraction and training, a full disk, two runs at once.

Each stage runs as a user runs it (`mcncl …` in a subprocess, reporting to one Prefect server).
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from extractors.corpora.csv_corpus import prepare_csv
from extractors.corpora.demo import feat_data_dir
from fusion.checkpoint import load_checkpoint
from tests.media import make_speech_corpus
from tests.project import prefect_ui, run_in, tool_env
from tests.tensor_cache import make_tensor_cache
from vocabulary.atomic import write_parquet

PHOTOS = ["0-f15-hao-ph.jpg", "0-f1-su-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg"]


@pytest.fixture(scope="module", autouse=True)
def server(tmp_path_factory):
    with prefect_ui(tmp_path_factory.mktemp("faults") / "prefect-home"):
        yield


def csv_manifest(root: Path, rows: list[dict]) -> Path:
    with open(root / "corpus.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table, _ = prepare_csv(root / "corpus.csv", name="c")
    write_parquet(table, root / "manifest.parquet")
    return root / "manifest.parquet"


def text_corpus(root: Path, n: int = 600) -> Path:
    root.mkdir(parents=True)
    return csv_manifest(root, [{"utterance_id": f"t{i}", "text": f"Sentence number {i} is "
                                f"{'happy' if i % 2 else 'sad'} today.", "label": "ab"[i % 2],
                                "split": "train", "audio_path": ""} for i in range(n)])


def face_corpus(root: Path, n: int = 12) -> Path:
    clips = root / "clips"
    clips.mkdir(parents=True)
    rows = []
    for i in range(n):
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-loop", "1", "-i",
                        str(feat_data_dir() / PHOTOS[i % 4]), "-t", str(1 + i / 10), "-r", "5",
                        "-vf", "scale=-2:240,format=yuv420p", "-c:v", "libx264",
                        str(clips / f"v{i}.mp4")], check=True)
        rows.append({"utterance_id": f"v{i}", "text": "x", "label": "ab"[i % 2],
                     "split": "train", "video_path": f"clips/v{i}.mp4"})
    return csv_manifest(root, rows)


def extract(modality: str, manifest: Path, out: Path, cache: Path) -> list[str]:
    params = out.parent / f"{out.name}-params.yaml"
    settings = "shard_size: 8" if modality == "text" else "workers: 1, shard_size: 1"
    params.write_text(f"extract: {{cache_dir: {cache}}}\n{modality}: {{{settings}}}\n")
    return [sys.executable, "-m", "mcncl", "extract", modality, "--manifest", str(manifest),
            "--out-dir", str(out), "--params", str(params)]


def kill_when(proc: subprocess.Popen, ready, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def summary_numbers(stderr: str) -> list[int]:
    """utterances, computed, cached, failed: from the table the stage prints last."""
    line = [row for row in stderr.splitlines() if row.count("│") >= 5][-1]
    return [int(x) for x in line.replace("│", " ").split()[:4]]


@pytest.mark.parametrize(("modality", "corpus", "total", "kill_at"), [
    ("text", text_corpus, 600, 80), ("facial", face_corpus, 12, 3)])
def test_sigkill_during_extraction_then_rerun_matches_an_uninterrupted_run(
        tmp_path: Path, modality, corpus, total, kill_at):
    manifest = corpus(tmp_path / "corpus")
    cache, out = tmp_path / "cache", tmp_path / "out"
    command = extract(modality, manifest, out, cache)
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: len(list(cache.rglob("*.arrow"))) >= kill_at)
    done = len(list(cache.rglob("*.arrow")))
    assert kill_at <= done < total, "the run finished before it could be killed"
    visible = [p.name for p in out.glob("*")] if out.exists() else []
    assert f"{modality}.parquet" not in visible  # never a partial file under the final name
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    utterances, computed, cached, failed = summary_numbers(resumed.stderr)
    assert (utterances, cached, computed, failed) == (total, done, total - done, 0)
    reference = subprocess.run(extract(modality, manifest, tmp_path / "ref",
                                       tmp_path / "ref-cache"), capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    assert_same_features(pq.read_table(out / f"{modality}.parquet"),
                         pq.read_table(tmp_path / "ref" / f"{modality}.parquet"))


def assert_same_features(resumed: pa.Table, reference: pa.Table) -> None:
    """Same rows, columns and values; floats to 1e-4, since a resumed text run batches the
    remaining sentences differently and padding changes the last bits (see test_text)."""
    assert resumed.schema == reference.schema
    assert resumed["utterance_id"].to_pylist() == reference["utterance_id"].to_pylist()
    for name in resumed.column_names[1:]:
        a, b = resumed[name], reference[name]
        while pa.types.is_list(a.type) or pa.types.is_fixed_size_list(a.type):
            assert a.null_count == b.null_count, name  # the same masked entries
            a, b = pc.list_flatten(a), pc.list_flatten(b)
        if pa.types.is_floating(a.type):
            np.testing.assert_allclose(a.to_numpy(zero_copy_only=False),
                                       b.to_numpy(zero_copy_only=False), atol=1e-4, err_msg=name)
        else:
            assert a.equals(b), name


def training_project(root: Path) -> Path:
    make_tensor_cache(root / "data" / "tensors" / "c", sizes=(900, 64, 0))
    (root / "params.yaml").write_text(
        "corpora: {c: {}}\nmodel: {d_model: 32, n_heads: 4, n_layers: 1}\n"
        "train: {epochs: 10, batch_size: 16, lr: 0.002, patience: 100, num_threads: 1}\n")
    return root


def test_sigkill_during_training_then_resume_matches_an_uninterrupted_run(tmp_path: Path):
    killed, whole = training_project(tmp_path / "killed"), training_project(tmp_path / "whole")
    log = killed / "data/models/c/train_log.csv"
    reference = subprocess.Popen([sys.executable, "-m", "mcncl", "train"], cwd=whole,
                                 env=tool_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)  # meanwhile, on one thread
    proc = subprocess.Popen([sys.executable, "-m", "mcncl", "train"], cwd=killed,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: log.is_file() and log.read_text().count("\n") >= 4)  # 3 epochs
    epochs_done = log.read_text().count("\n") - 1
    assert 3 <= epochs_done < 10, "training finished before it could be killed"
    resumed = run_in(killed, sys.executable, "-m", "mcncl", "train", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {epochs_done}" in resumed.stderr
    _, stderr = reference.communicate(timeout=600)
    assert reference.returncode == 0, stderr
    curves = [(p / "data/models/c/train_log.csv").read_text().splitlines()
              for p in (killed, whole)]
    assert curves[0] == curves[1]
    weights = [load_checkpoint(p / "data/models/c/model.safetensors")["state_dict"]
               for p in (killed, whole)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])


@pytest.fixture()
def tiny_disk(tmp_path: Path):
    """A 3 MB tmpfs: a real 'No space left on device' (needs root, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_is_a_clear_error_and_keeps_the_previous_output(tmp_path, tiny_disk):
    manifest = text_corpus(tmp_path / "corpus", 20)
    out = tiny_disk / "features"
    first = subprocess.run(extract("text", manifest, out, tmp_path / "cache"),
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = (out / "text.parquet").read_bytes()
    free = shutil.disk_usage(tiny_disk).free
    (tiny_disk / "filler").write_bytes(b"\0" * (free - 4096))
    # a setting that changes the features: everything is recomputed, then cannot be written
    params = out.parent / "features-params.yaml"
    params.write_text(params.read_text() + "text: {shard_size: 8, max_tokens: 8}\n")
    full = subprocess.run(extract("text", manifest, out, tmp_path / "cache")[:-2] +
                          ["--params", str(params)], capture_output=True, text=True)
    assert full.returncode == 2
    message = " ".join(full.stderr.split())
    assert f"error: {out / 'text.parquet'}: cannot write it (No space left on device)" in message
    assert "free some space or choose another output folder" in message
    assert (out / "text.parquet").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["errors", "text.parquet"]


def test_two_extraction_runs_at_once_do_not_corrupt_each_other(tmp_path: Path):
    manifest = make_speech_corpus(tmp_path / "corpus", 16)
    command = extract("acoustic", manifest, tmp_path / "out", tmp_path / "cache")
    runs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(p.wait(), p.stderr.read()) for p in runs]
    assert [rc for rc, _ in results] == [0, 0], results
    reference = subprocess.run(extract("acoustic", manifest, tmp_path / "ref",
                                       tmp_path / "ref-cache"), capture_output=True, text=True)
    assert reference.returncode == 0
    assert pq.read_table(tmp_path / "out" / "acoustic.parquet").equals(
        pq.read_table(tmp_path / "ref" / "acoustic.parquet"))
    assert not [p for p in (tmp_path / "out").rglob("*.tmp")]

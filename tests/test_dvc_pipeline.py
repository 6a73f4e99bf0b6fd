"""The whole DVC graph on the demo corpus, in a temporary git + DVC copy of the project.

One full ``dvc repro`` is shared by the module; every test that edits the project puts it
back (``git checkout`` + ``dvc checkout``) so the next one starts from the committed state.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import yaml

from fusion.checkpoint import load_checkpoint
from tests.project import (
    REPO,
    api,
    commit,
    copy_project,
    prefect_ui,
    run_in,
    set_param,
    stages_run,
    tool_env,
)

STAGES = ["manifest", "extract_acoustic", "finetune_text", "extract_text", "extract_facial",
          "build_tensors", "train", "evaluate"]
TEXT_CHAIN = {"finetune_text@demo", "extract_text@demo", "build_tensors@demo", "train@demo",
              "evaluate@demo"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("dvc")
    with prefect_ui(root / "prefect-home") as url:  # one server for all, as `make ui` gives
        project = copy_project(root / "project")
        first = run_in(project, "dvc", "repro")
        assert first.returncode == 0, first.stdout + first.stderr
        commit(project, "demo pipeline")
        yield SimpleNamespace(path=project, first=first, url=url)


@pytest.fixture()
def project(built) -> Path:
    yield built.path
    for cmd in (["git", "checkout", "--", "."], ["git", "clean", "-fdq", "--", "params.yaml"],
                ["dvc", "checkout", "--force"]):
        run_in(built.path, *cmd)
    status = run_in(built.path, "dvc", "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout


def test_first_repro_runs_every_stage_and_writes_every_output(built):
    project = built.path
    assert stages_run(built.first) == {"demo_corpus"} | {f"{s}@demo" for s in STAGES}
    # the demo keeps the small packaged encoder: no hint towards all-mpnet-base-v2
    assert "all-mpnet" not in built.first.stdout + built.first.stderr
    manifest = project / "data" / "manifests" / "demo.parquet"
    rows = duckdb.sql(f"select count(*), count(distinct label) from '{manifest}'").fetchall()[0]
    assert rows == (72, 5)
    features = project / "data" / "features" / "demo"
    for modality in ("acoustic", "text", "facial"):
        counts = duckdb.sql(f"select (select count(*) from '{features}/{modality}.parquet'), "
                            f"(select count(*) from '{features}/errors/{modality}.parquet')")
        assert counts.fetchall() == [(72, 0)], modality  # every demo clip has speech and a face
    shapes = duckdb.sql(f"select min(len(aus)), min(len(aus[1])), bool_and(list_bool_and("
                        f"face_present)) from '{features}/facial.parquet'").fetchall()
    assert shapes[0][1:] == (17, True) and shapes[0][0] >= 5
    metrics = run_in(project, "dvc", "metrics", "show", "--json")
    assert metrics.returncode == 0, metrics.stderr
    values = json.loads(metrics.stdout)
    shown = next(iter(values.values()))["data"]["data/models/demo/metrics.json"]["data"]
    assert shown["split"] == "test" and 0 <= shown["weighted_f1"] <= 1
    plots = run_in(project, "dvc", "plots", "show", "--json")
    assert plots.returncode == 0, plots.stderr
    assert {"data/models/demo/train_log.csv", "data/models/demo/confusion.csv"} <= set(
        json.loads(plots.stdout)["data"])
    predictions = project / "data" / "models" / "demo" / "predictions.parquet"
    assert duckdb.sql(f"select count(*) from '{predictions}'").fetchall() == [(12,)]


def test_a_fresh_clone_reproduces_the_committed_lock(built):
    """A user's clone stays clean after `make demo`: the committed dvc.lock matches the code,
    and every stage writes byte for byte what the lock records, on any CPU: the demo is
    ``portable`` (torch's maths take one code path everywhere) and face crops are read by
    LiteRT's built-in kernels, not by XNNPACK's per-CPU ones."""
    committed = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    made = yaml.safe_load((built.path / "dvc.lock").read_text())["stages"]
    assert set(made) == set(committed)
    for name, stage in made.items():
        ours, theirs = _lock_entries(stage), _lock_entries(committed[name])
        stale = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        assert not stale, (f"{name}: {', '.join(stale)} differ from the committed dvc.lock; run "
                           "`dvc repro` and commit dvc.lock (or make the output reproducible)")


def _lock_entries(stage: dict) -> dict[str, object]:
    """A dvc.lock stage as ``kind path`` → its record (code deps apart from data deps)."""
    entries: dict[str, object] = {"cmd": stage["cmd"], "params": stage.get("params")}
    for dep in stage["deps"]:
        kind = "data" if dep["path"].startswith("data/") else "code"
        entries[f"{kind} {dep['path']}"] = dep
    entries |= {f"out {out['path']}": out for out in stage.get("outs", [])}
    return entries


def test_every_stage_is_a_completed_flow_run_in_the_prefect_server(built):
    runs = api(built.url, "flow_runs/filter", {"flow_runs": {"tags": {"all_": ["corpus:demo"]}}})
    stages = {tag for run in runs for tag in run["tags"] if tag.startswith("stage:")}
    assert stages == {"stage:demo_corpus"} | {f"stage:{s}" for s in STAGES}
    assert {run["state_type"] for run in runs} == {"COMPLETED"}
    assert {"train-demo", "evaluate-demo", "extract-facial-demo"} <= {r["name"] for r in runs}
    artifacts = api(built.url, "artifacts/filter", {"artifacts": {"key": {"any_": [
        "evaluate-demo", "extract-facial"]}}})
    assert {a["key"] for a in artifacts} == {"evaluate-demo", "extract-facial"}
    evaluation = next(a["data"] for a in artifacts if a["key"] == "evaluate-demo")
    assert "| weighted-F1 (test, n=12) |" in evaluation


def test_noop_repro_runs_nothing(project: Path):
    again = run_in(project, "dvc", "repro")
    assert again.returncode == 0
    assert stages_run(again) == set()
    assert "Data and pipelines are up to date." in again.stdout


def test_training_param_reruns_only_training_and_evaluation_as_one_prefect_flow(project: Path):
    set_param(project, "  lr: 0.0005", "  lr: 0.001")
    status = run_in(project, "dvc", "status", "--json")
    assert set(json.loads(status.stdout)) == {"train@demo"}  # evaluate follows from its outputs
    result = run_in(project, "mcncl", "pipeline")  # the graph as one flow: a task per stage
    assert result.returncode == 0, result.stderr
    assert "stages run: train@demo, evaluate@demo" in result.stderr
    assert "Task run 'dvc-repro-extract_facial'" in result.stderr
    forced = run_in(project, "mcncl", "pipeline", "evaluate", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "stages run: evaluate@demo" in forced.stderr
    unknown = run_in(project, "mcncl", "pipeline", "evalute")
    assert unknown.returncode == 2
    assert "unknown stage(s) evalute; dvc.yaml has demo_corpus, manifest," in unknown.stderr


def test_facial_param_reruns_facial_extraction_and_what_follows(project: Path):
    def frames() -> int:
        return duckdb.sql(f"select max(len(aus)) from "
                          f"'{project}/data/features/demo/facial.parquet'").fetchall()[0][0]

    at_five = frames()
    set_param(project, "  fps: 5.0", "  fps: 2.0")
    result = run_in(project, "dvc", "repro")
    assert result.returncode == 0, result.stderr
    assert stages_run(result) == {"extract_facial@demo", "build_tensors@demo", "train@demo",
                                  "evaluate@demo"}
    assert 0 < frames() < at_five


def test_finetuning_runs_before_text_extraction_and_reruns_only_the_text_chain(project: Path):
    for line, new in [("  enabled: false", "  enabled: true"),
                      ("  corpora: []", "  corpora: [demo]"), ("  epochs: 3", "  epochs: 1"),
                      ("  max_tokens: 128", "  max_tokens: 48"), ("  context: 0", "  context: 1")]:
        set_param(project, line, new)
    first = run_in(project, "dvc", "repro")
    assert first.returncode == 0, first.stdout + first.stderr
    assert stages_run(first) == TEXT_CHAIN
    assert first.stdout.index("'finetune_text@demo'") < first.stdout.index("'extract_text@demo'")
    card = json.loads((project / "data/models/demo/text_encoder/card.json").read_text())
    assert card["enabled"] and card["context"] == 1 and card["train_utterances"] == 48
    text = project / "data/features/demo/text.parquet"
    config = json.loads(duckdb.sql(f"select value from parquet_kv_metadata('{text}') where key "
                                   "= 'config'").fetchall()[0][0])
    assert config["model"] == f"data/models/demo/text_encoder/{card['folder']}"
    assert config["context"] == 1
    clip = project / "data/demo/test/output_repeated_splits_test/dia0_utt2.mp4"
    predicted = run_in(project, "mcncl", "predict", str(clip), "--text", "Oh my God!", "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["notes"][1:] == [ALONE, (
        "text: the model learnt from transcripts with the 1 previous turns of their dialogue; a "
        "lone clip has none, so its transcript is encoded alone.")]


def test_dvc_exp_run_with_a_changed_setting_and_exp_show(project: Path):
    run = run_in(project, "dvc", "exp", "run", "-n", "faster-lr", "-S", "train.lr=0.002")
    assert run.returncode == 0, run.stdout + run.stderr
    assert stages_run(run) == {"train@demo", "evaluate@demo"}
    show = run_in(project, "dvc", "exp", "show", "--json")
    assert show.returncode == 0, show.stderr
    experiments = [exp for commit in json.loads(show.stdout)
                   for exp in (commit.get("experiments") or [])]
    [exp] = [e for e in experiments if e["name"] == "faster-lr"]
    data = exp["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["lr"] == 0.002
    metric = data["metrics"]["data/models/demo/metrics.json"]["data"]
    assert 0 <= metric["weighted_f1"] <= 1


def test_second_corpus_runs_side_by_side_and_reuses_cached_features(project: Path):
    params = project / "params.yaml"
    text, added = re.subn(r"^demo:", "  again:\n    kind: meld\n    root: data/demo\n"
                          "    portable: true\n"  # as the demo: pinned text features are shared
                          "    model: {modalities: [text], d_model: 32}\n\ndemo:",
                          params.read_text(), count=1, flags=re.M)  # its own model
    assert added == 1
    params.write_text(text)
    cache_entries = len(list((project / "data" / "cache").rglob("*.arrow")))
    result = run_in(project, "dvc", "repro")
    assert result.returncode == 0, result.stderr
    assert stages_run(result) == {f"{s}@again" for s in STAGES}  # the demo's results stand
    configs = {name: load_checkpoint(project / f"data/models/{name}/model.safetensors")[
        "model_config"] for name in ("demo", "again")}
    assert (configs["again"]["modalities"], configs["again"]["d_model"]) == (["text"], 32)
    assert configs["demo"]["modalities"] == ["text", "acoustic", "facial"]
    # the same clips and texts: every feature comes from the per-utterance cache
    assert len(list((project / "data" / "cache").rglob("*.arrow"))) == cache_entries
    query = run_in(project, "mcncl", "query", "select count(*) as n from again.facial")
    assert query.returncode == 0 and "72" in query.stdout, query.stderr
    assert (project / "data" / "models" / "again" / "metrics.json").is_file()
    # fine-tuning is off for both: a finetune setting reruns their finetune_text stages, which
    # write the same card, so nothing after them runs
    assert json.loads((project / "data/models/again/text_encoder/card.json").read_text()) == {
        "enabled": False}
    set_param(project, "  lr: 0.00005", "  lr: 0.0001")
    rerun = run_in(project, "dvc", "repro")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert stages_run(rerun) == {"finetune_text@demo", "finetune_text@again"}


def test_remote_push_then_pull_restores_every_artefact(project: Path, tmp_path: Path):
    outs = _cached_outputs(project)
    before = {path: _digest(project / path) for path in outs}
    assert {"data/demo", "data/manifests/demo.parquet",
            "data/models/demo/model.safetensors"} <= set(outs)
    remote = tmp_path / "remote"
    for cmd in (["dvc", "remote", "add", "-d", "store", str(remote)], ["dvc", "push"]):
        result = run_in(project, *cmd)
        assert result.returncode == 0, result.stdout + result.stderr
    for path in outs:
        target = project / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    pull = run_in(project, "dvc", "pull")
    assert pull.returncode == 0, pull.stdout + pull.stderr
    assert {path: _digest(project / path) for path in outs} == before
    assert "up to date" in run_in(project, "dvc", "status").stdout


def _cached_outputs(project: Path) -> list[str]:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    in_git = set(run_in(project, "git", "ls-files").stdout.split())  # the cache: false outs
    return sorted(out["path"] for stage in lock["stages"].values()
                  for out in stage.get("outs", []) if out["path"] not in in_git)


def _digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


ALONE = ("dialogue context (past): the model reads each utterance with its conversation, and "
         "these clips have none, so each is scored alone; give the conversation as a CSV (mcncl "
         "predict conversation.csv) to use it.")


def test_predict_a_clip_gives_what_the_pipeline_gave_and_clear_errors(project: Path, tmp_path):
    """A folder of one speaker's clips is standardised as the pipeline standardised her
    (``tensors.speaker_norm: speaker``); the demo's model reads dialogue context, which a
    folder has not, so each clip is scored alone and a note says so (with a context-free model
    a folder gets the pipeline's own numbers: tests/test_predict.py). A lone clip is
    standardised with the training statistics and says so too."""
    clip = project / "data/demo/test/output_repeated_splits_test/dia0_utt2.mp4"
    uid = "demo/test/dia0_utt2"
    manifest = project / "data/manifests/demo.parquet"
    folder = tmp_path / "anna"  # every clip of hers, with its transcript beside it
    folder.mkdir()
    for each, text, video in duckdb.sql(f"select utterance_id, text, video_path from "
                                        f"'{manifest}' where speaker = 'Anna'").fetchall():
        (folder / f"{each.replace('/', '_')}.mp4").symlink_to(project / "data/demo" / video)
        (folder / f"{each.replace('/', '_')}.txt").write_text(text)
    text = (folder / f"{uid.replace('/', '_')}.txt").read_text()
    predictions = project / "data/models/demo/predictions.parquet"
    labels = json.loads(duckdb.sql(f"select value from parquet_kv_metadata('{predictions}') "
                                   "where key = 'labels'").fetchall()[0][0])
    [(expected,)] = duckdb.sql(f"select probabilities from '{predictions}' "
                               f"where utterance_id = '{uid}'").fetchall()
    hers = run_in(project, "mcncl", "predict", str(folder), "--json")
    assert hers.returncode == 0, hers.stderr
    [mine] = [r for r in json.loads(hers.stdout) if Path(r["clip"]).stem == uid.replace("/", "_")]
    in_dialogue = dict(zip(labels, expected, strict=True))  # the pipeline read its dialogue
    assert mine["probabilities"] != pytest.approx(in_dialogue, abs=1e-4)
    assert mine["masked"] == {} and mine["notes"] == [ALONE]
    given = run_in(project, "mcncl", "predict", str(clip), "--text", text, "--json")
    assert given.returncode == 0, given.stderr
    result = json.loads(given.stdout)
    assert result["predicted"] == max(result["probabilities"], key=result["probabilities"].get)
    assert result["masked"] == {} and result["notes"] == [
        "acoustic/facial: the model learnt from features standardised per speaker; 1 clip(s) are "
        "too few to know their speaker (it takes 8: give a folder of one speaker's clips), so "
        "they are standardised with the training statistics instead.", ALONE]
    assert result["probabilities"] != pytest.approx(mine["probabilities"], abs=1e-4)
    clip.with_suffix(".txt").write_text(text)  # the sidecar transcript is read when no --text
    sidecar = json.loads(run_in(project, "mcncl", "predict", str(clip), "--json").stdout)
    assert sidecar["text"] == text and sidecar["probabilities"] == result["probabilities"]
    clip.with_suffix(".txt").unlink()
    table = run_in(project, "mcncl", "predict", str(clip))
    assert table.returncode == 0 and result["predicted"] in table.stdout
    assert "masked text: no transcript: give --text or a sidecar .txt file" in table.stderr
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    bad = run_in(project, "mcncl", "predict", str(fake))
    assert bad.returncode == 2 and f"{fake}: nothing usable in it (" in bad.stderr
    (tmp_path / "params.yaml").write_text((project / "params.yaml").read_text())
    untrained = run_in(tmp_path, "mcncl", "predict", str(clip), "--text", "hi")
    assert untrained.returncode == 2
    assert "no trained model; run `mcncl train` (DVC stage train) first." in untrained.stderr


def test_report_of_the_demo_run(project: Path):
    result = run_in(project, "mcncl", "report")
    assert result.returncode == 0, result.stderr
    page = (project / "data/models/demo/report.html").read_text()
    metrics = json.loads((project / "data/models/demo/metrics.json").read_text())
    assert f"<td>{metrics['weighted_f1']:.3f}</td>" in page
    assert "<td>train</td><td>48</td><td>48</td><td>48</td><td>48</td>" in page
    assert "none: every utterance of every stage has its features." in page


def test_a_run_while_dvc_is_busy_passes_dvcs_lock_message_through(project: Path):
    busy = subprocess.Popen(["dvc", "repro", "--force", "--single-item", "train@demo"],
                            cwd=project, env=tool_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    rwlock = project / ".dvc" / "tmp" / "rwlock"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and busy.poll() is None and \
            "train@demo" not in (rwlock.read_text() if rwlock.is_file() else ""):
        time.sleep(0.1)
    second = run_in(project, "mcncl", "pipeline", "train")
    assert busy.wait() == 0
    assert second.returncode == 2
    message = " ".join(second.stderr.split())
    assert "error: `dvc repro train` failed: ERROR: failed to reproduce" in message
    assert "is busy, it is being blocked by: (PID" in message
    assert "dvc repro --force --single-item train@demo" in message


def test_the_readme_sql_examples_work_as_written(project: Path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    examples = [shlex.split(line) for line in readme.splitlines()
                if line.startswith('mcncl query "')]
    assert len(examples) >= 4
    outputs = {}
    for example in examples:
        result = run_in(project, *example)
        assert result.returncode == 0, (example, result.stderr)
        outputs[example[2]] = result.stdout
    au12 = next(out for sql, out in outputs.items() if "mean_au12" in sql)
    first_row = next(line for line in au12.splitlines() if line.startswith("│ ") and
                     "label" not in line and "varchar" not in line)
    assert first_row.split("│")[1].strip() == "joy"  # the smiling face smiles most
    neighbours = next(out for sql, out in outputs.items() if "cosine" in sql)
    assert neighbours.count("demo/") == 3

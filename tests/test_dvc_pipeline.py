from __future__ import annotations

import json
from pathlib import Path

import duckdb

from tests.project import copy_project, run_in


def test_dvc_repro_builds_demo_and_manifest_then_is_up_to_date(tmp_path: Path):
    project = copy_project(tmp_path / "project")
    first = run_in(project, "dvc", "repro")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Running stage 'demo_corpus'" in first.stdout
    manifest = project / "data" / "manifests" / "demo.parquet"
    rows = duckdb.sql(f"select count(*), count(distinct label) from '{manifest}'").fetchall()[0]
    assert rows == (72, 5)
    assert (project / "dvc.lock").is_file()
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
    again = run_in(project, "dvc", "repro")
    assert again.returncode == 0
    assert "Data and pipelines are up to date." in again.stdout

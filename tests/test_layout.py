"""dvc.yaml writes the same paths as :class:`vocabulary.layout.Layout`, the one layout in code,
and every stage depends on the whole of the code it runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from vocabulary.layout import Layout

REPO = Path(__file__).resolve().parents[1]
KEY = "${key}"
CODE = ["vocabulary", "extractors", "flows", "fusion", "mcncl"]  # mcncl/cli.py imports all five


def layout_paths(layout: Layout) -> set[str]:
    paths = [layout.manifest, layout.features, layout.tensors, layout.models,
             layout.text_encoder, layout.checkpoint, layout.metrics, layout.predictions,
             layout.train_log, layout.report]
    for modality in ("acoustic", "facial", "text"):
        paths += [layout.feature_table(modality), layout.error_table(modality)]
    return {str(p) for p in paths}


def dvc_yaml_paths(stage: dict) -> set[str]:
    """Every path a stage names: deps, outs, metrics, plots and the arguments of its cmd."""
    body = stage.get("do", stage)
    named = [*body.get("deps", []), *body.get("outs", []), *body.get("metrics", []),
             *body.get("plots", [])]
    paths = {next(iter(p)) if isinstance(p, dict) else p for p in named}
    paths |= set(re.findall(r"(data/\S+)", body["cmd"]))
    return {p for p in paths if p.startswith("data/") and KEY in p}


def test_every_corpus_path_in_dvc_yaml_is_the_layouts():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    layout = Layout(KEY)
    known = layout_paths(layout)
    named = {path: name for name, stage in stages.items() for path in dvc_yaml_paths(stage)}
    # evaluate's plots are its own files in the model folder, which the layout does not list
    foreign = {p: n for p, n in named.items()
               if p not in known and Path(p).parent != layout.models}
    assert not foreign, f"dvc.yaml paths that vocabulary/layout.py does not give: {foreign}"
    assert {str(layout.manifest), str(layout.text_encoder), str(layout.checkpoint),
            str(layout.metrics), str(layout.tensors)} <= set(named)


def test_every_stage_depends_on_the_five_code_folders_and_its_data_only():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        deps = stage.get("do", stage)["deps"]
        assert deps[:len(CODE)] == CODE, f"{name}: deps must start with the code folders {CODE}"
        other = [d for d in deps[len(CODE):] if not d.startswith(("data/", "${"))]
        assert not other, f"{name}: code deps beside the five folders: {other}"


def test_bytecode_does_not_change_the_code_folders_hashes(tmp_path: Path):
    """Python writes __pycache__/ into the code folders as it runs; DVC must not see it, or
    every stage would look changed after any run. Asked of DVC itself, with our .dvcignore."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, env=env, check=True)
    shutil.copy(REPO / ".dvcignore", tmp_path / ".dvcignore")
    pyc = "extractors/__pycache__/base.cpython-311.pyc"
    check = subprocess.run([dvc, "check-ignore", pyc], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert check.returncode == 0, ".dvcignore must list __pycache__/ (stages' code deps are " \
                                  "whole folders)"


def test_layout_of_a_corpus():
    layout = Layout("meld", Path("/x/data"))
    assert (layout.manifest, layout.feature_table("text"), layout.error_table("facial"),
            layout.text_encoder, layout.report) == (
        Path("/x/data/manifests/meld.parquet"), Path("/x/data/features/meld/text.parquet"),
        Path("/x/data/features/meld/errors/facial.parquet"),
        Path("/x/data/models/meld/text_encoder"), Path("/x/data/models/meld/report.html"))


def test_corpora_are_the_manifests_found(tmp_path: Path):
    (tmp_path / "manifests").mkdir()
    for name in ("b", "a"):
        (tmp_path / "manifests" / f"{name}.parquet").touch()
    (tmp_path / "manifests" / "notes.txt").touch()
    assert Layout.corpora(tmp_path) == ["a", "b"]

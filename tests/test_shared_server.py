"""Stage processes share one background Prefect server (mcncl/ui.py), a real one on loopback.

Each test has its own Prefect home; what a test starts, it also sees stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.project import api
from tests.test_meld import row, write_csv

STARTED = "Prefect server starting in the background"


@pytest.fixture()
def env(prefect_home: Path) -> dict:
    """What a user's shell has: no PREFECT_API_URL, the shared server allowed (no opt-out)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PREFECT_API_URL", "MCNCL_EPHEMERAL_SERVER")}
    return {**clean, "PREFECT_HOME": str(prefect_home), "MCNCL_IDLE_STOP_S": "60",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def corpora(root: Path, labels: dict[str, str]) -> None:
    """params.yaml with one two-utterance MELD corpus per name, labelled as given."""
    for name, label in labels.items():
        write_csv(root / name / "dev_sent_emo.csv", [row(1, "Hi!", label, 0, 0),
                                                     row(2, "No.", "anger", 0, 1)])
    (root / "params.yaml").write_text("corpora:\n" + "".join(
        f"  {name}:\n    root: {name}\n" for name in labels))


def mcncl(env: dict, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mcncl", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def launchers(env: dict) -> list[psutil.Process]:
    """The server launchers (mcncl/idle.py) running for this test's Prefect home."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if ("mcncl.idle" in (process.info["cmdline"] or [])
                    and process.environ().get("PREFECT_HOME") == env["PREFECT_HOME"]):
                found.append(process)
        except psutil.Error:
            continue
    return found


def gone(env: dict, timeout_s: float = 60.0) -> bool:
    """True once no launcher or server of this Prefect home runs (waiting up to timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while launchers(env) and time.monotonic() < deadline:
        time.sleep(0.5)
    return not launchers(env) and not (Path(env["PREFECT_HOME"]) / "mcncl-ui.json").exists()


def test_two_stages_at_once_start_one_server_that_keeps_their_runs(env, tmp_path):
    corpora(tmp_path, {"a": "joy", "b": "joy"})
    stages = [mcncl(env, tmp_path, "manifest", "--corpus", name) for name in ("a", "b")]
    try:
        results = [finish(stage) for stage in stages]
        assert [code for code, _ in results] == [0, 0], results
        assert sum(err.count(STARTED) for _, err in results) == 1, results
        assert not any("Starting temporary server" in err for _, err in results)
        [launcher] = launchers(env)
        assert [p.cmdline()[2:4] for p in launcher.children()] == [["server", "start"]]
        url = json.loads((Path(env["PREFECT_HOME"]) / "mcncl-ui.json").read_text())["url"]
        runs = api(url, "flow_runs/filter", {"flow_runs": {"tags": {"all_": ["stage:manifest"]}}})
        assert sorted((r["name"], r["state_type"], sorted(r["tags"])) for r in runs) == [
            ("manifest-a", "COMPLETED", ["corpus:a", "stage:manifest"]),
            ("manifest-b", "COMPLETED", ["corpus:b", "stage:manifest"])]
        ids = [r["id"] for r in runs]
        tasks = api(url, "task_runs/filter", {"flow_runs": {"id": {"any_": ids}}})
        assert sorted(t["state_type"] for t in tasks) == ["COMPLETED", "COMPLETED"]
    finally:
        code, stderr = finish(mcncl(env, tmp_path, "ui", "--stop"))
    assert code == 0 and "Prefect server stopped." in stderr
    assert gone(env)


def test_a_failed_stage_leaves_the_server_to_its_idle_stop(env, tmp_path):
    corpora(tmp_path, {"bad": "happy"})  # not a MELD label: the stage fails
    env["MCNCL_IDLE_STOP_S"] = "2"
    try:
        code, stderr = finish(mcncl(env, tmp_path, "manifest", "--corpus", "bad"))
        assert code == 2 and "label 'happy'" in stderr
        assert STARTED in stderr and "stops after 2 s unused" in stderr
        assert gone(env), "the server outlived its idle stop"
    finally:
        finish(mcncl(env, tmp_path, "ui", "--stop"))


def test_pipeline_stops_the_server_it_started_also_when_a_stage_fails(env, tmp_path):
    corpora(tmp_path, {"bad": "happy"})
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  manifest:\n    cmd: mcncl manifest --corpus bad\n    deps: [bad]\n"
        "    outs: [data/manifests/bad.parquet]\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True)
    try:
        code, stderr = finish(mcncl(env, tmp_path, "pipeline"))
        assert code == 2 and "dvc repro manifest" in stderr and STARTED in stderr
        assert gone(env, timeout_s=5), "the pipeline left its server running"
    finally:
        finish(mcncl(env, tmp_path, "ui", "--stop"))

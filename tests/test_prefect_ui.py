"""`mcncl ui` starts a real Prefect server on loopback; a stage's flow run lands in its API and
shows in its UI, in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.project import api, free_port
from tests.test_meld import row, write_csv


@pytest.fixture()
def env(prefect_home: Path) -> dict:
    """A Prefect home of its own (its own database) and no API URL: what `mcncl ui` must set up."""
    clean = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**clean, "PREFECT_HOME": str(prefect_home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def mcncl(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcncl", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def test_ui_server_receives_a_stage_run_with_tags_task_runs_and_artifact(env, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = mcncl(env, tmp_path, "ui", "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        assert f"Prefect UI: {url}" in started.stdout and "mcncl ui --stop" in started.stdout
        write_csv(tmp_path / "c" / "dev_sent_emo.csv", [row(1, "Hi!", "joy", 0, 0),
                                                         row(2, "No.", "anger", 0, 1)])
        (tmp_path / "params.yaml").write_text("corpora:\n  tiny:\n    root: c\n")
        stage = mcncl(env, tmp_path, "manifest")
        assert stage.returncode == 0, stage.stderr
        assert "Starting temporary server" not in stage.stderr  # it used the running server
        [run] = api(url, "flow_runs/filter",
                    {"flow_runs": {"tags": {"all_": ["corpus:tiny", "stage:manifest"]}}})
        assert (run["name"], run["state_type"]) == ("manifest-tiny", "COMPLETED")
        tasks = api(url, "task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
        assert [(t["name"].split("-")[0], t["state_type"]) for t in tasks] == [
            ("manifest", "COMPLETED")]
        [artifact] = api(url, "artifacts/filter", {"artifacts": {"key": {"any_": [
            "manifest-tiny"]}}})
        assert artifact["type"] == "markdown" and artifact["flow_run_id"] == run["id"]
        assert "| split | rows | labels | with audio | with video |" in artifact["data"]
        assert "| dev | 2 | 2 | 0 | 0 |" in artifact["data"]
        other = mcncl(env, tmp_path, "ui", "--port", str(free_port()))  # one server, kept
        assert other.returncode == 0 and f"Prefect UI: {url}" in other.stdout
        assert "already running, so it stays on" in other.stderr
        with urllib.request.urlopen(f"{url}/ui-settings", timeout=10) as response:
            assert json.load(response)["api_url"] == f"{url}/api"  # not port 4200's
        if shutil.which("chromium") is None:
            pytest.skip("chromium is not installed (make test installs it)")
        page = rendered(f"{url}/runs", tmp_path / "chromium")
        assert "manifest-tiny" in page and "Can't connect" not in page
    finally:
        stopped = mcncl(env, tmp_path, "ui", "--stop")
    assert stopped.returncode == 0 and "Prefect server stopped." in stopped.stderr
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/api/health", timeout=2)
    again = mcncl(env, tmp_path, "ui", "--stop")
    assert "No shared Prefect server is running." in again.stderr


def test_pipeline_served_as_a_deployment_runs_when_triggered(env, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert mcncl(env, tmp_path, "ui", "--port", str(port)).returncode == 0
    served = None
    try:
        write_csv(tmp_path / "c" / "dev_sent_emo.csv", [row(1, "Hi!", "joy", 0, 0)])
        (tmp_path / "params.yaml").write_text("corpora:\n  tiny:\n    root: c\n")
        (tmp_path / "dvc.yaml").write_text(
            "stages:\n  manifest:\n    cmd: mcncl manifest --corpus tiny\n    deps: [c]\n"
            "    outs: [data/manifests/tiny.parquet]\n")
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
            subprocess.run(cmd, cwd=tmp_path, env=env, check=True)
        served = subprocess.Popen([sys.executable, "-m", "mcncl", "pipeline", "--serve"],
                                  cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deployment = poll(lambda: api(url, "deployments/filter", {"deployments": {
            "name": {"any_": ["mcncl-pipeline"]}}}))
        run = api(url, f"deployments/{deployment['id']}/create_flow_run", {})
        final = poll(lambda: [r for r in api(url, "flow_runs/filter", {"flow_runs": {
            "id": {"any_": [run["id"]]}}}) if r["state_type"] in ("COMPLETED", "FAILED",
                                                                 "CRASHED")])
        assert final["state_type"] == "COMPLETED", final["state"]
        assert (tmp_path / "data" / "manifests" / "tiny.parquet").is_file()
        assert "manifest:" in (tmp_path / "dvc.lock").read_text()
    finally:
        if served is not None:
            served.terminate()
            served.wait(timeout=60)
        mcncl(env, tmp_path, "ui", "--stop")


def rendered(url: str, profile: Path) -> str:
    """The page's DOM once headless Chromium has run its scripts (the UI fetches the runs
    from the API the server's /ui-settings names)."""
    result = subprocess.run(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1400,900", "--virtual-time-budget=40000",
         "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return result.stdout


def poll(found, timeout_s: float = 180.0) -> dict:
    """The first item ``found()`` returns, polling once a second."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if items := found():
            return items[0]
        time.sleep(1)
    raise AssertionError(f"nothing found within {timeout_s:.0f} s")

"""Stage processes share one background Prefect server (mcncl/server.py), a real one on loopback.

Each test has its own Prefect home; what a test starts, it also sees stopped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from mcncl import server
from tests.project import api, free_port
from tests.test_meld import row, write_csv

STARTED = "Prefect server starting in the background"


@pytest.fixture()
def env(prefect_home: Path) -> dict:
    """What a user's shell has: no PREFECT_API_URL, the shared server allowed (no opt-out)."""
    clean = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
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
    """The server launchers (mcncl/server.py) running for this test's Prefect home."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if ("mcncl.server" in (process.info["cmdline"] or [])
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
    return not launchers(env) and not state_file(env).exists()


def state_file(env: dict) -> Path:
    return Path(env["PREFECT_HOME"]) / "mcncl" / "server.json"


def test_two_stages_at_once_start_one_server_that_keeps_their_runs(env, tmp_path):
    corpora(tmp_path, {"a": "joy", "b": "joy"})
    stages = [mcncl(env, tmp_path, "manifest", "--corpus", name) for name in ("a", "b")]
    try:
        results = [finish(stage) for stage in stages]
        assert [code for code, _ in results] == [0, 0], results
        assert sum(err.count(STARTED) for _, err in results) == 1, results
        assert not any("Starting temporary server" in err for _, err in results)
        [launcher] = launchers(env)
        assert [p.cmdline()[1:4] for p in launcher.children()] == [
            [str(Path(sys.executable).with_name("prefect")), "server", "start"]]
        port = json.loads(state_file(env).read_text())["port"]
        url = f"http://127.0.0.1:{port}"
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


def test_the_launcher_ignores_a_planted_module_and_listens_on_loopback_only(env, tmp_path):
    """`mcncl ui` run in a folder holding `extractors/__init__.py` does not run that file (the
    launcher starts from the 0700 state folder, without the current folder on its path); the
    server and its launcher listen on one loopback port, the one the UI calls."""
    planted = tmp_path / "extractors" / "__init__.py"
    planted.parent.mkdir()
    planted.write_text(f"open({str(tmp_path / 'PLANTED-RAN')!r}, 'w').close()\n")
    command = [str(Path(sys.executable).with_name("mcncl")), "ui", "--port", str(free_port())]
    started = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    try:
        assert started.returncode == 0, started.stderr
        assert not (tmp_path / "PLANTED-RAN").exists()
        folder = state_file(env).parent
        assert folder.stat().st_mode & 0o777 == 0o700
        port = json.loads(state_file(env).read_text())["port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=10) as r:
            assert json.load(r)["api_url"] == f"http://127.0.0.1:{port}/api"
        [launcher] = launchers(env)
        listening = {(c.laddr.ip, c.laddr.port) for p in [launcher, *launcher.children(True)]
                     for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
        assert listening == {("127.0.0.1", port)}
    finally:
        subprocess.run([*command[:2], "--stop"], cwd=tmp_path, env=env, capture_output=True)
    assert gone(env)


def test_a_forged_or_unsafe_state_is_not_acted_on(tmp_path, monkeypatch):
    """What the state folder says is checked before it is used: a state naming a process
    that is not a launcher of ours is no server (and is not signalled); a state folder that
    others may open is refused with the fix."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    victim = subprocess.Popen(["sleep", "60"])
    try:
        for state in ({"pid": victim.pid, "port": free_port(), "idle_stop_s": 0},
                      {"pid": "1; rm -rf /", "port": 80, "idle_stop_s": 0}, ["not", "a", "dict"]):
            server.path("state").write_text(json.dumps(state))
            assert server.read_state() is None and server.running() is None
            assert server.stop() is False
        assert victim.poll() is None  # not signalled
    finally:
        victim.kill()
        victim.wait()
    folder = server.state_dir()
    folder.chmod(0o777)
    with pytest.raises(server.ServerError, match=r"mcncl: .*mode 0700.*chmod 700"):
        server.path("state")


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
                    reason="another user's listener needs root and the system Python")
def test_a_port_another_user_listens_on_is_not_taken_for_our_server():
    port = free_port()
    code = (f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); "
            "s.listen(); print('up', flush=True); time.sleep(60)")
    other = subprocess.Popen(["/usr/bin/python3", "-c", code], user="nobody", cwd="/",
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "up\n"
        assert server.listener_is_ours(port) is False
        with socket.socket() as own:
            own.bind(("127.0.0.1", 0))
            own.listen()
            assert server.listener_is_ours(own.getsockname()[1]) is True
    finally:
        other.kill()
        other.wait()

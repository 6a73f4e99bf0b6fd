"""Stage processes share one background Prefect server (mcncl/ui.py), a real one on loopback.

Each test has its own Prefect home; what a test starts, it also sees stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
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


def launchers(env: dict, module: str = "mcncl.idle") -> list[psutil.Process]:
    """The server launchers (mcncl/idle.py), or warm workers (mcncl.warm), running for this
    test's Prefect home."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if (module in (process.info["cmdline"] or [])
                    and process.environ().get("PREFECT_HOME") == env["PREFECT_HOME"]):
                found.append(process)
        except psutil.Error:
            continue
    return found


def gone(env: dict, timeout_s: float = 60.0) -> bool:
    """True once no launcher, server or warm worker of this Prefect home runs (waiting up to
    timeout_s)."""
    def running() -> bool:
        return bool(launchers(env) or launchers(env, "mcncl.warm"))

    deadline = time.monotonic() + timeout_s
    while running() and time.monotonic() < deadline:
        time.sleep(0.5)
    return not running() and not (Path(env["PREFECT_HOME"]) / "mcncl-ui.json").exists()


def test_two_stages_at_once_start_one_server_that_keeps_their_runs(env, tmp_path):
    corpora(tmp_path, {"a": "joy", "b": "joy"})
    stages = [mcncl(env, tmp_path, "manifest", "--corpus", name) for name in ("a", "b")]
    try:
        results = [finish(stage) for stage in stages]
        assert [code for code, _ in results] == [0, 0], results
        assert sum(err.count(STARTED) for _, err in results) == 1, results
        assert not any("Starting temporary server" in err for _, err in results)
        [launcher] = launchers(env)
        assert sorted(p.cmdline()[1:4] for p in launcher.children()) == [
            ["-m", "mcncl.warm", env["PREFECT_HOME"] + "/mcncl-ui.sock"],
            [str(Path(sys.executable).with_name("prefect")), "server", "start"]]
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


def warm_runs(env: dict) -> list[str]:
    """The commands the warm worker ran, from the server's log (mcncl/warm.py)."""
    return re.findall(r"warm worker: pid \d+ runs `mcncl (.*?)`", log(env))


def ended(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether process ``pid`` ends (and its parent reaps it) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not psutil.pid_exists(pid)


def log(env: dict) -> str:
    return (Path(env["PREFECT_HOME"]) / "mcncl-ui.log").read_text()


def new_worker(state_file: Path, old_pid: int | None = None) -> dict:
    """The warm worker's state once a worker other than ``old_pid`` is ready (up to 120 s)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(state_file.read_text())
            if state["pid"] != old_pid:
                return state
        time.sleep(0.5)
    raise AssertionError(f"no new warm worker wrote {state_file}")


def extracting(env: dict, cwd: Path) -> tuple[subprocess.Popen, int]:
    """`mcncl extract text` started on a long manifest, and the pid of the warm worker's child
    that runs it."""
    before = len(warm_runs(env))
    command = mcncl(env, cwd, "extract", "text", "--manifest", long_manifest(cwd))
    while len(warm_runs(env)) == before and command.poll() is None:
        time.sleep(0.1)
    return command, int(re.findall(r"pid (\d+) runs `mcncl extract", log(env))[-1])


def long_manifest(cwd: Path, n: int = 2000) -> str:
    """Corpus b's manifest grown to ``n`` distinct utterances, so that extracting it lasts
    until the test interrupts it (two utterances can be done before the signal lands)."""
    table = pq.read_table(cwd / "data/manifests/b.parquet")
    first = table.slice(0, 1).to_pylist()[0]
    rows = [{**first, "utterance_id": f"long/{i}", "text": f"Sentence number {i}."}
            for i in range(n)]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema),
                   cwd / "data/manifests/long.parquet")
    return "data/manifests/long.parquet"


def test_with_the_server_running_stage_commands_run_in_the_warm_worker(env, tmp_path):
    corpora(tmp_path, {"a": "joy", "b": "joy", "bad": "happy"})
    warm_state = Path(env["PREFECT_HOME"]) / "mcncl-ui.warm"
    packages = tmp_path / "extra-packages"  # a folder of installed packages, as site-packages
    packages.mkdir()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(packages), env.get("PYTHONPATH")]))
    try:
        assert finish(mcncl(env, tmp_path, "manifest", "--corpus", "a"))[0] == 0
        state = new_worker(warm_state)
        [launcher] = launchers(env)
        assert state["pid"] in [p.pid for p in launcher.children()]
        assert warm_runs(env) == []  # the first command started the server: it ran cold

        code, stderr = finish(mcncl(env, tmp_path, "manifest", "--corpus", "b"))
        assert code == 0, stderr
        assert "2 utterances" in stderr and (tmp_path / "data/manifests/b.parquet").is_file()
        code, stderr = finish(mcncl(env, tmp_path, "manifest", "--corpus", "bad"))
        assert code == 2 and "label 'happy'" in stderr  # the child's status and stderr
        assert warm_runs(env) == ["manifest --corpus b", "manifest --corpus bad"]

        # what the preloaded libraries read at import differs, or the user opted out: cold
        threads = str(int(env.get("OMP_NUM_THREADS", "1")) + 1)  # not what the worker has
        for extra in ({"OMP_NUM_THREADS": threads}, {"MCNCL_WARM": "0"}):
            code, stderr = finish(mcncl({**env, **extra}, tmp_path, "manifest", "--corpus", "b"))
            assert code == 0, stderr
        assert len(warm_runs(env)) == 2

        (packages / "new_package").mkdir()  # as `pip install` would: the worker starts anew
        state = new_worker(warm_state, state["pid"])
        assert finish(mcncl(env, tmp_path, "manifest", "--corpus", "b"))[0] == 0
        assert len(warm_runs(env)) == 3 and "packages were installed" in log(env)

        slow, pid = extracting(env, tmp_path)
        slow.send_signal(signal.SIGINT)  # Ctrl-C reaches the child that runs the command
        code, stderr = finish(slow)
        assert code != 0 and ("KeyboardInterrupt" in stderr or "Aborted" in stderr), stderr
        assert ended(pid)
        slow, pid = extracting(env, tmp_path)
        slow.kill()  # SIGKILL cannot be passed on: the child sees the command gone and ends
        slow.wait()
        assert ended(pid)
        assert psutil.pid_exists(state["pid"])  # the worker itself goes on
    finally:
        finish(mcncl(env, tmp_path, "ui", "--stop"))
    assert gone(env) and not warm_state.exists()

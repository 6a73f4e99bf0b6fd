"""A temporary copy of this project as its own git + DVC repo, as a user's clone is."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ["dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore", ".gitignore", "mcncl",
          "vocabulary", "extractors", "flows", "fusion", "data/demo_script.csv"]
GIT_USER = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}


def copy_project(dest: Path) -> Path:
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def tool_env() -> dict[str, str]:
    """The environment with this venv's tools (dvc, mcncl) on PATH and a git identity."""
    return {**os.environ, **GIT_USER,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def run_in(project: Path, *cmd: str) -> subprocess.CompletedProcess:
    """Run a command in ``project`` with this venv's tools on PATH."""
    return subprocess.run(cmd, cwd=project, env=tool_env(), capture_output=True, text=True)


def commit(project: Path, message: str) -> None:
    for cmd in (["git", "add", "-A"], ["git", "commit", "-q", "-m", message]):
        result = run_in(project, *cmd)
        assert result.returncode == 0, result.stdout + result.stderr


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    """The stages a ``dvc repro`` really ran (not those it skipped or restored)."""
    return set(re.findall(r"Running stage '([^']+)'", result.stdout))


def set_param(project: Path, line: str, new: str) -> None:
    """Replace one line of params.yaml (keeping its comments), as a user's edit would."""
    params = project / "params.yaml"
    text = params.read_text()
    assert re.search(rf"^{re.escape(line)}", text, re.M), line
    params.write_text(re.sub(rf"^{re.escape(line)}", new, text, count=1, flags=re.M))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def prefect_ui(home: Path) -> Iterator[str]:
    """`mcncl ui` on a free port with its own Prefect home, as ``make ui`` gives a user.

    Every ``mcncl`` command run meanwhile (``PREFECT_HOME`` set here) reports to it instead
    of starting an ephemeral server of its own; yields the server's URL.
    """
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_API_URL")}
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.pop("PREFECT_API_URL", None)
    started = run_in(home.parent, sys.executable, "-m", "mcncl", "ui", "--port", str(free_port()))
    try:
        assert started.returncode == 0, started.stderr
        yield re.search(r"Prefect UI: (\S+)", started.stdout).group(1)
    finally:
        run_in(home.parent, sys.executable, "-m", "mcncl", "ui", "--stop")
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def api(url: str, path: str, body: dict, attempts: int = 10) -> list[dict]:
    """POST ``body`` to the Prefect server's REST API (``flow_runs/filter`` ...).

    A busy server answers 503 (its SQLite database is locked) or 429; like Prefect's own
    client, try again a little later.
    """
    request = urllib.request.Request(f"{url}/api/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    for attempt in range(attempts - 1):
        try:
            return _post(request)
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 503):
                raise
            time.sleep(1 + attempt)
    return _post(request)


def _post(request: urllib.request.Request) -> list[dict]:
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)

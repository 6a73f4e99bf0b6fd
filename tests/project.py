"""A temporary copy of this project as its own git + DVC repo, as a user's clone is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ["dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore", "mcncl", "extractors",
          "flows", "fusion", "data/demo_script.csv"]


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


def run_in(project: Path, *cmd: str) -> subprocess.CompletedProcess:
    """Run a command in ``project`` with this venv's tools on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)

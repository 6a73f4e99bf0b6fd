from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extractors.corpora.demo import DemoConfig, build_demo
from tests.project import free_port

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# Stage commands run by tests start no shared background server (mcncl/ui.py): as before it,
# each uses a running `mcncl ui` server or Prefect's temporary one, and none outlives a test.
# tests/test_shared_server.py lifts this for its own Prefect homes.
os.environ.setdefault("MCNCL_EPHEMERAL_SERVER", "1")


def pytest_collection_modifyitems(items):
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is absent")
    for item in items:
        if "realdata" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The demo corpus, built once per test session."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    return build_demo(REPO / "data" / "demo_script.csv", DemoConfig(out=str(out)))


@pytest.fixture(scope="session")
def migrated_prefect_home(tmp_path_factory) -> Path:
    """A Prefect home whose database is migrated, made once: a server on a fresh home spends
    ~30 s on 2 cores creating its tables, on a copy of this one ~8 s."""
    home = tmp_path_factory.mktemp("prefect-template") / "home"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    for args in (["--port", str(free_port())], ["--stop"]):
        subprocess.run([sys.executable, "-m", "mcncl", "ui", *args], env=env, check=True,
                       capture_output=True, timeout=300)
    return home


@pytest.fixture()
def prefect_home(migrated_prefect_home, tmp_path) -> Path:
    """This test's own Prefect home: a copy of the migrated one."""
    return Path(shutil.copytree(migrated_prefect_home, tmp_path / "prefect-home",
                                ignore=shutil.ignore_patterns("mcncl-ui.*")))

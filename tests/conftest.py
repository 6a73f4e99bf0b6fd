from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from extractors.corpora.demo import DemoConfig, build_demo
from tests.project import free_port

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
_SESSION: dict[str, Path] = {}  # the session's Prefect server: its home and a migrated copy
TEMPLATE = "MCNCL_TEST_PREFECT_TEMPLATE"  # its copy's folder, for pytest-xdist's workers


def pytest_configure(config):
    """One real Prefect server (`mcncl ui`) for the whole session, started before any test
    module imports Prefect: every flow run of this process and of the commands tests start
    reports to it (``PREFECT_API_URL``), instead of each starting a server of its own. Its
    freshly migrated database is copied aside for tests that need a home of their own.
    pytest-xdist's workers inherit both from the process that started them."""
    if os.environ.get("PREFECT_API_URL"):
        return
    work = Path(tempfile.mkdtemp(prefix="mcncl-tests-prefect-"))
    home, template = work / "home", work / "template"
    started = _mcncl_ui(home, "--port", str(free_port()))
    os.environ["PREFECT_API_URL"] = re.search(r"Prefect UI: (\S+)", started).group(1) + "/api"
    template.mkdir()
    with sqlite3.connect(home / "prefect.db") as source, \
            sqlite3.connect(template / "prefect.db") as copy:
        source.backup(copy)
    os.environ[TEMPLATE] = str(template)
    _SESSION.update(work=work, home=home)


def pytest_unconfigure(config):
    if _SESSION:
        os.environ.pop(TEMPLATE, None)
        _mcncl_ui(_SESSION["home"], "--stop")
        shutil.rmtree(_SESSION["work"], ignore_errors=True)


def _mcncl_ui(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run([sys.executable, "-m", "mcncl", "ui", *args], capture_output=True,
                            text=True, timeout=300, env={**env, "PREFECT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return result.stdout


# the longest files (minutes each), run first so that with pytest-xdist (`make test`) the
# other worker takes the many short files meanwhile instead of waiting for them at the end
LONGEST_FIRST = ("test_dvc_pipeline.py", "test_faults.py")


def pytest_collection_modifyitems(items):
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is absent")
    for item in items:
        if "realdata" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(skip)
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The demo corpus, built once per test session."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    return build_demo(REPO / "data" / "demo_script.csv", DemoConfig(out=str(out)))


@pytest.fixture()
def prefect_home(tmp_path) -> Path:
    """This test's own Prefect home, holding a copy of the session server's freshly migrated
    database (a server on a fresh home spends ~30 s on 2 cores creating its tables)."""
    if TEMPLATE not in os.environ:
        pytest.skip("needs the session's Prefect server (PREFECT_API_URL was set outside)")
    return Path(shutil.copytree(os.environ[TEMPLATE], tmp_path / "prefect-home"))

from __future__ import annotations

from pathlib import Path

import pytest

from mcncl.config import DemoConfig
from mcncl.demo import build_demo

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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

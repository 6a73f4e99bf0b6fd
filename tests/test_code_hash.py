"""An extractor's cache key follows the project code it imports, and only that code.

Each test edits a copy of the project packages, never the working tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extractors.code_hash import code_hash, project_modules
from tests.media import make_clip

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vocabulary", "extractors", "flows", "fusion", "mcncl")
EXTRACTORS = {"acoustic": "extractors.acoustic.extractor",
              "hf_audio": "extractors.acoustic.hf_encoder",
              "text": "extractors.text.extractor", "facial": "extractors.facial.extractor"}


def copy_packages(dest: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def hashes(root: Path) -> dict[str, str]:
    """Each extractor module's code hash, read afresh (not the one kept for this process)."""
    code_hash.cache_clear()
    return {name: code_hash(module, root) for name, module in EXTRACTORS.items()}


def test_each_extractor_hashes_the_modules_it_imports_and_no_other_modalitys():
    modules = {name: set(project_modules(module)) for name, module in EXTRACTORS.items()}
    assert {"extractors", "extractors.acoustic", "extractors.acoustic.extractor",
            "extractors.audio", "extractors.base", "extractors.configs"} <= modules["acoustic"]
    assert modules["acoustic"] < modules["hf_audio"]  # hf_audio builds on the acoustic module
    assert {"extractors.text", "extractors.text.extractor", "extractors.layers"} <= modules["text"]
    # lazy imports inside a function count: the backends are imported when one is chosen
    assert {"extractors.facial.mediapipe_backend", "extractors.facial.pyfeat_backend",
            "extractors.facial.tracks", "extractors.facial.video"} <= modules["facial"]
    facial = {m for m in modules["facial"] if m.startswith("extractors.facial")}
    assert not modules["acoustic"] & ({"extractors.text", "extractors.layers"} | facial)
    assert not modules["text"] & ({"extractors.acoustic", "extractors.audio"} | facial)
    assert not modules["facial"] & {"extractors.text", "extractors.acoustic", "extractors.layers"}
    everything = set().union(*modules.values())
    # no flows, fusion...; the extractors that run torch tag pinned maths (vocabulary.portable)
    assert {m for m in everything if m.split(".")[0] != "extractors"} == {
        "vocabulary", "vocabulary.portable"}
    assert "vocabulary.portable" not in modules["acoustic"]
    assert "extractors.registry" not in everything


def test_the_hash_is_of_the_source_not_of_where_it_lies(tmp_path: Path):
    assert hashes(copy_packages(tmp_path)) == hashes(REPO)


@pytest.mark.parametrize(("edited", "changed"), [
    ("extractors/acoustic/extractor.py", {"acoustic", "hf_audio"}),
    ("extractors/text/extractor.py", {"text"}),
    ("extractors/facial/pyfeat_backend.py", {"facial"}),  # imported inside a function only
    ("extractors/layers.py", {"hf_audio", "text"}),
    ("extractors/base.py", set(EXTRACTORS)),
    ("extractors/registry.py", set()),
    ("flows/extract.py", set()),
])
def test_an_edit_changes_the_keys_of_exactly_the_extractors_that_import_it(
        tmp_path: Path, edited: str, changed: set[str]):
    root = copy_packages(tmp_path)
    before = hashes(root)
    with open(root / edited, "a") as fh:
        fh.write("\n# an edit\n")
    after = hashes(root)
    assert {name for name in EXTRACTORS if before[name] != after[name]} == changed


def test_a_lazy_import_inside_a_function_and_a_relative_import_count(tmp_path: Path):
    root = copy_packages(tmp_path)
    (root / "extractors" / "extra.py").write_text("X = 1\n")
    (root / "extractors" / "deep.py").write_text("Y = 1\n")
    (root / "extractors" / "lazy.py").write_text(
        "def f():\n    from . import extra\n    import extractors.deep\n    return extra\n")
    assert {"extractors", "extractors.lazy", "extractors.extra", "extractors.deep"} == set(
        project_modules("extractors.lazy", root))


def test_the_vocabulary_package_is_project_code_too():
    assert {"vocabulary", "vocabulary.atomic"} <= set(project_modules("extractors.corpora"))


SCRIPT = """
import json, sys
import extractors
from extractors.base import UtteranceInput, config_hash
from extractors.configs import AcousticConfig, FacialConfig
from extractors.registry import make_extractor
from flows.cache import ResultCache, cache_key

cache_dir, clip = sys.argv[1:]
utt = UtteranceInput("u", "hello", clip, clip)
hits = {"imported_from": extractors.__file__}
for modality, config in (("acoustic", AcousticConfig(feature_set="eGeMAPSv02")),
                         ("facial", FacialConfig(fps=2.0))):
    extractor = make_extractor(modality, config)
    cache = ResultCache(cache_dir, modality, extractor.schema)
    key = cache_key(extractor.digest(utt), config_hash(config), extractor.version)
    hits[modality] = cache.get(key) is not None
    if not hits[modality]:
        cache.put(key, extractor.extract([utt])[0])
print(json.dumps(hits))
"""


def test_after_an_edit_to_the_acoustic_extractor_only_its_cache_entries_miss(tmp_path: Path):
    """The real extractors and result cache, run from a copy of the project in a fresh
    process each time (as a stage reruns after an edit); the key is the one flows/extract.py
    computes."""
    root = copy_packages(tmp_path / "project")
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0)

    def run() -> dict:
        env = {**os.environ, "PYTHONPATH": str(root)}
        done = subprocess.run([sys.executable, "-P", "-c", SCRIPT, str(tmp_path / "cache"),
                               str(clip)], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        hits = json.loads(done.stdout.splitlines()[-1])
        assert hits.pop("imported_from") == str(root / "extractors" / "__init__.py")
        return hits

    assert run() == {"acoustic": False, "facial": False}
    with open(root / "extractors" / "acoustic" / "extractor.py", "a") as fh:
        fh.write("\nNATIVE_HOP_MS = 10  # an edit that changes nothing computed\n")
    assert run() == {"acoustic": False, "facial": True}

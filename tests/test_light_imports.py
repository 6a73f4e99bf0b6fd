"""A command imports only what it uses: the CLI and the config load no extractor or model."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("opensmile", "torch", "mediapipe", "sentence_transformers", "prefect")


def test_cli_and_config_import_no_extractor_model_or_prefect_library():
    code = ("import sys, mcncl.cli, mcncl.config; mcncl.config.load_params(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert _python(code) == "[]"


def test_the_entry_point_hands_over_to_the_warm_worker_with_the_standard_library_only():
    code = ("import sys; before = set(sys.modules); import mcncl.warm; "
            "print(sorted(m.split('.')[0] for m in set(sys.modules) - before "
            "if not m.startswith('mcncl') and m.split('.')[0] not in sys.stdlib_module_names))")
    assert _python(code) == "[]"


def test_the_warm_worker_pays_opensmiles_first_use_cost_once_before_any_command():
    # openSMILE's first Smile reads every installed package's metadata (audobject caches it);
    # a child forked after the warm-up finds the cache filled and skips that second
    code = ("import audobject.core.utils as u, mcncl.warm as w; "
            "before = len(u.PACKAGES_DISTRIBUTIONS); w._warm_up(); "
            "print(before, 'opensmile' in u.PACKAGES_DISTRIBUTIONS)")
    assert _python(code).split() == ["0", "True"]


def _python(code: str) -> str:
    """What a fresh interpreter running ``code`` prints."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()

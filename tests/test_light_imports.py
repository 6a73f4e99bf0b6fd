"""A command imports only what it uses: the CLI and the config load no extractor or model."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("opensmile", "torch", "mediapipe", "sentence_transformers", "prefect")


def test_cli_and_config_import_no_extractor_model_or_prefect_library():
    code = ("import sys, mcncl.cli, mcncl.config; mcncl.config.load_params(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert _python(code) == "[]"


def _python(code: str) -> str:
    """What a fresh interpreter running ``code`` prints."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()

"""Model files that installed PyPI wheels carry, found and checked by sha256 before use."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path


def packaged_file(package: str, relative: str, sha256: str, fix: str) -> Path:
    """``relative`` inside the installed ``package``; ValueError ending in ``fix`` when the
    package is absent or the file is not the expected one."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the package {package} (which carries {Path(relative).name}) is not "
                         f"installed; run `make setup` or {fix}.")
    path = Path(spec.submodule_search_locations[0]) / relative
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"
    if digest != sha256:
        raise ValueError(f"{path}: sha256 {digest} is not the expected {sha256}; reinstall "
                         f"{package} or {fix}.")
    return path

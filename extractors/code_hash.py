"""A hash of the project source an extractor runs, part of its per-utterance cache key.

Derived from the source, never bumped by hand: the extractor's module and every project module
it imports, transitively, at the top or inside a function (a lazily imported backend counts).
An edit to any of them gives new keys for exactly the extractors that import it, so their
cached results are recomputed and every other extractor's still hit. Third-party libraries are
left out: each extractor puts their versions (and its model's weights hash) in ``version``.

Imports are read with ``ast`` and resolved with ``importlib.machinery.PathFinder`` under
``root``, the folder holding the project packages: unlike ``importlib.util.find_spec`` it
imports no parent package, so the code hashed is the source on disk under ``root`` (a copy of
the project, in the tests) and nothing is run.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vocabulary", "extractors", "flows", "fusion", "mcncl")  # the project's


@functools.lru_cache(maxsize=32)
def code_hash(module: str, root: Path = ROOT) -> str:
    """sha256 (16 hex digits) over the sorted (name, source) of ``module``'s project modules.

    Read once per process, as the process's code is (``code_hash.cache_clear()`` forgets).
    """
    h = hashlib.sha256()
    for name, path in sorted(project_modules(module, root).items()):
        source = path.read_bytes()
        h.update(f"{name}\0{len(source)}\0".encode())
        h.update(source)
    return h.hexdigest()[:16]


def project_modules(module: str, root: Path = ROOT) -> dict[str, Path]:
    """``module`` and the project modules it imports, transitively: name → source file.

    A module brings its parent packages (their ``__init__.py`` runs first); ``from a import b``
    brings ``a.b`` too when that is a module.
    """
    found: dict[str, Path] = {}
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = _find(name, root)
        if spec is None:
            raise ModuleNotFoundError(f"{name}: no such project module under {root}.")
        todo += [name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)]  # its parents
        if not spec.has_location or spec.origin is None:  # a namespace package: no source
            continue
        found[name] = Path(spec.origin)
        package = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
        todo += [m for m in _imports(found[name], package) if _find(m, root) is not None]
    return found


def _imports(path: Path, package: str) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` anywhere in the file may name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                    if node.level else node.module or "")
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _find(name: str, root: Path) -> ModuleSpec | None:
    """The spec of a module under ``root``, found package by package without importing any."""
    search: list[str] | None = [str(root)]
    spec = None
    parts = name.split(".")
    for i in range(len(parts)):
        if search is None:  # a plain module has no submodules
            return None
        spec = PathFinder.find_spec(".".join(parts[: i + 1]), search)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or []) or None
    return spec

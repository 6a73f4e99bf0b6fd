"""Layers only look down (DESIGN.md): checked by parsing every import, also inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# what each layer may import from the project; extractors/atomic.py is the leaf I/O module
MAY_IMPORT = {
    "extractors": {"extractors"},
    "flows": {"flows", "extractors", "fusion"},  # the stages run extractors and fusion
    "fusion": {"fusion", "extractors"},
    "mcncl": {"mcncl", "flows", "fusion", "extractors"},
}
LEAF = "extractors/atomic.py"


def project_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in MAY_IMPORT]


def test_no_module_imports_a_layer_above_its_own():
    wrong = [f"{path.relative_to(REPO)}:{line} imports {name}"
             for layer, allowed in MAY_IMPORT.items()
             for path in sorted((REPO / layer).rglob("*.py"))
             for line, name in project_imports(path) if name.split(".")[0] not in allowed]
    assert not wrong, "; ".join(wrong)


def test_the_leaf_io_module_imports_only_the_standard_library_and_pyarrow():
    tree = ast.parse((REPO / LEAF).read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= {"__future__", "contextlib", "errno", "os", "tempfile", "collections",
                       "pathlib", "pyarrow", "json", "typing"}, modules


def test_every_project_module_the_benchmarks_import_exists():
    """bench/ is not run in CI: at least a moved module must not leave a benchmark unable to
    start (as `from mcncl.demo import ...` did)."""
    missing = [f"{path.relative_to(REPO)}:{line} imports {name}"
               for path in sorted((REPO / "bench").glob("*.py"))
               for line, name in project_imports(path) + _tests_imports(path)
               if not _module_file(name)]
    assert not missing, "; ".join(missing)


def _tests_imports(path: Path) -> list[tuple[int, str]]:
    return [(node.lineno, node.module) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module
            and node.module.split(".")[0] == "tests"]


def _module_file(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()

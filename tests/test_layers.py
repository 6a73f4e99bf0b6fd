"""Layers only look down (DESIGN.md): checked by parsing every import, also inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# what each layer may import from the project: vocabulary < extractors < fusion < flows < mcncl
MAY_IMPORT = {
    "vocabulary": {"vocabulary"},
    "extractors": {"extractors", "vocabulary"},
    "fusion": {"fusion", "extractors", "vocabulary"},
    "flows": {"flows", "extractors", "fusion", "vocabulary"},  # the stages run extractors, fusion
    "mcncl": {"mcncl", "flows", "fusion", "extractors", "vocabulary"},
}
LEAF = "vocabulary"  # the bottom layer: the standard library and pyarrow only


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


@pytest.mark.parametrize("path", sorted((REPO / LEAF).rglob("*.py")),
                         ids=lambda path: path.name)
def test_the_vocabulary_imports_only_the_standard_library_and_pyarrow(path: Path):
    tree = ast.parse(path.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= {"__future__", "contextlib", "errno", "os", "tempfile", "collections",
                       "pathlib", "pyarrow", "json", "typing", "dataclasses",
                       "sys", "vocabulary"}, modules


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

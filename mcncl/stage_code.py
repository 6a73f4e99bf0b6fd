"""The project's source files each DVC stage runs, so that ``dvc.yaml`` lists exactly those.

A stage runs ``mcncl <command>``: the command's function in ``mcncl/cli.py`` and everything
it imports, transitively (read from the source with ``ast``; nothing is imported but the CLI,
to find the command's function). A module's top-level imports always count; an import inside
a function counts once code already reached names that function, so the commands that share
``flows/stages.py`` each depend on their own stage's code only. And an import under
``if modality == "<name>"`` (the extractor registry) counts only for the command that names
that modality, so a change to the facial extractor does not rerun acoustic extraction.

    python -m mcncl.stage_code          # each stage's files, as dvc.yaml should list them
    python -m mcncl.stage_code --write  # put them in dvc.yaml's deps (data deps kept)
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import sys
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("extractors", "flows", "fusion", "mcncl")


def stage_commands(dvc_yaml: Path = REPO / "dvc.yaml") -> dict[str, list[str]]:
    """Each stage's ``mcncl`` command words (``foreach`` stages by their template)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    return {name: shlex.split((stage.get("do") or stage)["cmd"])[1:]
            for name, stage in stages.items()}


def listed_code(dvc_yaml: Path = REPO / "dvc.yaml") -> dict[str, set[str]]:
    """The project source files each stage lists among its deps (folders expanded)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    listed = {}
    for name, stage in stages.items():
        files: set[str] = set()
        for dep in (stage.get("do") or stage).get("deps", []):
            if dep.split("/")[0] in PACKAGES:
                path = REPO / dep
                files |= ({_relative(p) for p in path.rglob("*.py")} if path.is_dir()
                          else {dep})
        listed[name] = files
    return listed


def stage_code(words: list[str]) -> set[str]:
    """The source files (relative to the repository) that ``mcncl <words>`` runs."""
    from mcncl import cli

    function = _command_function(cli.app, words)
    command = ast.parse(textwrap.dedent(inspect.getsource(function)))
    files = {_relative(Path(cli.__file__))}
    waiting: dict[str, list[ast.AST]] = {}  # function name → its definitions not yet reached
    names: set[str] = set()
    own = ast.parse(Path(cli.__file__).read_text())
    own.body = [n for n in own.body if not getattr(n, "decorator_list", None)]  # other commands
    todo = [command, *_split(own, waiting)]
    while todo:
        code = todo.pop()
        for path in _imports(code, words) - files:
            files.add(path)
            todo += _split(ast.parse((REPO / path).read_text()), waiting)
        names |= _names(code, words)
        todo += [f for name in names & waiting.keys() for f in waiting.pop(name)]
    return files


def _split(tree: ast.Module, waiting: dict[str, list[ast.AST]]) -> list[ast.AST]:
    """A module's statements that run when it is imported; its functions go to ``waiting``:
    their imports count once something reached names them (a stage function of
    flows/stages.py counts only for the command that calls it)."""
    run = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            waiting.setdefault(node.name, []).append(node)
        else:
            run.append(node)
    return run


def _names(tree: ast.AST, words: list[str]) -> set[str]:
    """The names ``tree`` uses (``f`` and ``x.f`` both give ``f``)."""
    return {node.id if isinstance(node, ast.Name) else node.attr
            for node in _nodes(tree, words) if isinstance(node, ast.Name | ast.Attribute)}


def _command_function(app, words: list[str]):
    for group in app.registered_groups:
        if words and group.name == words[0]:
            return _command_function(group.typer_instance, words[1:])
    for command in app.registered_commands:
        if words and command.name == words[0]:
            return command.callback
    raise ValueError(f"`mcncl {' '.join(words)}` is not a command of mcncl/cli.py.")


def _imports(tree: ast.AST, words: list[str]) -> set[str]:
    """Project files imported anywhere in ``tree``, skipping other modalities' branches."""
    found: set[str] = set()
    for node in _nodes(tree, words):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            found |= _files(name)
    return found


def _nodes(tree: ast.AST, words: list[str]):
    """Every node of ``tree``, except under ``if modality == X`` when X is not in ``words``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _other_modality(node.test, words):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _other_modality(test: ast.expr, words: list[str]) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "modality" and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value not in words)


def _files(module: str) -> set[str]:
    """The file of a project module and the ``__init__.py`` of each package above it."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return set()
    found = set()
    for i in range(1, len(parts) + 1):
        base = REPO.joinpath(*parts[:i])
        for path in (base / "__init__.py", base.with_suffix(".py")):
            if path.is_file():
                found.add(_relative(path))
    return found


def _relative(path: Path) -> str:
    return path.resolve().relative_to(REPO).as_posix()


def write_deps(dvc_yaml: Path = REPO / "dvc.yaml") -> None:
    """Rewrite each stage's code deps in ``dvc.yaml`` (its other lines stay as they are)."""
    wanted = {stage: sorted(stage_code(words)) for stage, words in stage_commands(dvc_yaml).items()}
    out: list[str] = []
    stage, in_deps = None, False
    for line in dvc_yaml.read_text().splitlines():
        if match := re.fullmatch(r"  (\w+):", line):
            stage = match.group(1)
        item = re.fullmatch(r"(\s+)- (\S+)", line)
        if in_deps and item and item.group(2).split("/")[0] in PACKAGES:
            continue  # a code dep: replaced by the computed list below
        if in_deps and not item:
            in_deps = False
        out.append(line)
        if match := re.fullmatch(r"(\s+)deps:", line):
            in_deps = True
            out += [f"{match.group(1)}  - {path}" for path in wanted[stage]]
    dvc_yaml.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_deps()
    for stage, words in stage_commands().items():
        print(f"{stage}:\n" + "".join(f"  - {f}\n" for f in sorted(stage_code(words))))

"""dvc.yaml lists, for every stage, exactly the project code that stage runs."""

from __future__ import annotations

import ast

from mcncl.stage_code import _imports, listed_code, stage_code, stage_commands


def test_every_stage_lists_exactly_the_code_it_runs():
    listed = listed_code()
    problems = []
    for stage, words in stage_commands().items():
        runs = stage_code(words)
        if missing := sorted(runs - listed[stage]):
            problems.append(f"{stage} runs but does not list {', '.join(missing)}")
        if extra := sorted(listed[stage] - runs):
            problems.append(f"{stage} lists but does not run {', '.join(extra)}")
    assert not problems, "; ".join(problems) + " (fix: python -m mcncl.stage_code --write)"


def test_a_modality_branch_counts_only_for_its_own_command():
    source = ("def make(modality):\n"
              "    if modality == 'acoustic':\n        import flows.cache\n"
              "    if modality == 'facial':\n        import flows.tables\n"
              "    import flows.runners\n")
    assert _imports(ast.parse(source), ["extract", "acoustic"]) == {
        "flows/__init__.py", "flows/cache.py", "flows/runners.py"}


def test_the_train_stage_runs_the_training_code_and_not_the_report():
    runs = stage_code(stage_commands()["train"])
    assert {"mcncl/cli.py", "fusion/train.py", "fusion/model.py", "fusion/checkpoint.py"} <= runs
    assert "mcncl/report.py" not in runs and "fusion/evaluate.py" not in runs


def test_a_stage_function_counts_only_for_the_command_that_calls_it():
    """flows/stages.py holds every stage; each command depends on its own stage's code."""
    manifest = stage_code(stage_commands()["manifest"])
    assert {"flows/stages.py", "extractors/corpora/__init__.py"} <= manifest
    assert not {"fusion/train.py", "fusion/tensors.py", "extractors/text_finetune.py"} & manifest
    assert "fusion/tensors.py" in stage_code(stage_commands()["build_tensors"])

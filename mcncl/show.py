"""How ``mcncl`` commands show their results: tables and notes with rich.

Progress, notes and summaries go to standard error; what a user may pipe (a prediction, a
score table) goes to standard output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

err = Console(stderr=True)
out = Console()


def line(text: str) -> None:
    """One plain line on standard error (no highlighting, no wrapping of long paths)."""
    err.print(text, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def note(kind: str, text: str) -> None:
    err.print(f"[yellow]{kind}[/] {text}", highlight=False, soft_wrap=True)


def rows_table(title: str, rows: list[dict[str, Any]], justify: str = "left") -> Table:
    table = Table(title=title)
    for column in rows[0] if rows else ("(nothing)",):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


def manifest(table: Any, report: Any, target: Path) -> None:
    """The split counts of a new manifest, then what its adapter counted on the way."""
    from extractors.corpora import split_counts

    err.print(rows_table(f"{table.num_rows} utterances → {target}", split_counts(table)))
    for text in report.lines():
        note("counted", text)


def extraction(summary: Any) -> None:
    err.print(rows_table(f"{summary.modality}: {summary.features_path}", [{
        "utterances": summary.total, "computed": summary.computed, "cached": summary.cached,
        "failed": summary.failed, "seconds": f"{summary.seconds:.1f}"}], justify="right"))
    for kind, n in sorted(summary.kinds.items()):
        note("failed", f"{kind}: {n} (see {summary.errors_path})")


def predictions(results: list[dict]) -> None:
    """One clip: its distribution as bars; several: one row each."""
    if len(results) == 1 and "error" not in results[0]:
        _distribution(results[0])
        return
    table = Table(title=f"{len(results)} clips")
    for column in ("clip", "emotion", "probability", "masked"):
        table.add_column(column)
    for r in results:
        if "error" in r:
            table.add_row(Path(r["clip"]).name, "—", "", r["error"])
        else:
            table.add_row(Path(r["clip"]).name, r["predicted"],
                          f"{r['probabilities'][r['predicted']]:.3f}", ", ".join(r["masked"]))
    out.print(table)
    for text in next((r["notes"] for r in results if "notes" in r), []):
        note("note", text)


def _distribution(result: dict) -> None:
    table = Table(title=f"{Path(result['clip']).name}: {result['predicted']}")
    table.add_column("emotion")
    table.add_column("probability", justify="right")
    table.add_column("")
    for label, p in result["probabilities"].items():
        table.add_row(label, f"{p:.3f}", "█" * round(p * 30))
    out.print(table)
    for modality, why in result["masked"].items():
        note("masked", f"{modality}: {why}")
    for text in result["notes"]:
        note("note", text)


def scores(title: str, rows: list[dict[str, Any]]) -> None:
    out.print(rows_table(title, rows))

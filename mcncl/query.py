"""DuckDB over the pipeline's Parquet files, read in place (nothing is copied).

Views for the current corpus: ``manifest``, ``acoustic``, ``facial``, ``text``, ``errors``
(every stage's error table) and ``predictions``; the same views for every corpus under
``data/`` as ``<corpus>.<view>`` (e.g. ``meld.text``). A view exists when its file does.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def view_sources(data: Path, corpus: str) -> dict[str, str]:
    """View name → Parquet path (or glob) of one corpus, for the files that exist."""
    features = data / "features" / corpus
    candidates = {
        "manifest": data / "manifests" / f"{corpus}.parquet",
        "acoustic": features / "acoustic.parquet",
        "facial": features / "facial.parquet",
        "text": features / "text.parquet",
        "predictions": data / "models" / corpus / "predictions.parquet",
    }
    sources = {name: str(path) for name, path in candidates.items() if path.is_file()}
    if list((features / "errors").glob("*.parquet")):
        sources["errors"] = str(features / "errors" / "*.parquet")
    return sources


def view_sql(data: Path, corpus: str) -> list[str]:
    """The statements that create every view (usable as a ``duckdb -init`` file)."""
    statements = []
    corpora = sorted(p.stem for p in (data / "manifests").glob("*.parquet"))
    for name in corpora:
        statements.append(f'create schema if not exists "{name}"')
        for view, source in view_sources(data, name).items():
            statements.append(f"create or replace view \"{name}\".{view} as select * from "
                              f"read_parquet('{_quote(source)}')")
    for view, source in view_sources(data, corpus).items():
        statements.append(f"create or replace view main.{view} as select * from "
                          f"read_parquet('{_quote(source)}')")
    return statements


def connect(data: Path, corpus: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for statement in view_sql(data, corpus):
        con.execute(statement)
    return con


def _quote(text: str) -> str:
    return text.replace("'", "''")

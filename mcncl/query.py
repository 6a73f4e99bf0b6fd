"""DuckDB over the pipeline's Parquet files, read in place (nothing is copied).

Views for the current corpus: ``manifest``, ``acoustic``, ``facial``, ``text``, ``errors``
(every stage's error table) and ``predictions``; the same views for every corpus under
``data/`` as ``<corpus>.<view>`` (e.g. ``meld.text``). A view exists when its file does.
"""

from __future__ import annotations

import csv
import sys
import threading
from collections.abc import Callable
from os import PathLike, fspath
from pathlib import Path
from typing import Any

import duckdb

from vocabulary import MODALITIES
from vocabulary.layout import Layout

FORMATS = ("table", "csv", "parquet")


class QueryError(ValueError):
    """The query or its output options are wrong; the message says how to fix them."""


def view_sources(data: Path, corpus: str) -> dict[str, str]:
    """View name → DuckDB file pattern of one corpus, for the files that exist.

    Each pattern matches exactly its file (``*?[`` in a name are escaped, see
    :func:`glob_literal`); ``errors`` reads every ``*.parquet`` of the corpus's error folder."""
    layout = Layout(corpus, data)
    candidates = {"manifest": layout.manifest,
                  **{m: layout.feature_table(m) for m in MODALITIES},
                  "predictions": layout.predictions}
    sources = {name: glob_literal(path) for name, path in candidates.items() if path.is_file()}
    if list(layout.errors.glob("*.parquet")):
        sources["errors"] = glob_literal(layout.errors) + "/*.parquet"
    return sources


def view_sql(data: Path, corpus: str) -> list[str]:
    """The statements that create every view (usable as a ``duckdb -init`` file).

    CREATE VIEW takes no parameters, so names and paths go in through :func:`sql_identifier`
    and :func:`sql_string`, and nothing else of the user's is in the text."""
    statements = []
    for name in Layout.corpora(data):
        schema = sql_identifier(name)
        statements.append(f"create schema if not exists {schema}")
        for view, source in view_sources(data, name).items():
            statements.append(f"create or replace view {schema}.{view} as select * from "
                              f"read_parquet({sql_string(source)})")
    for view, source in view_sources(data, corpus).items():
        statements.append(f"create or replace view main.{view} as select * from "
                          f"read_parquet({sql_string(source)})")
    return statements


def connect(data: Path, corpus: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection holding the views of :func:`view_sql`."""
    con = duckdb.connect()
    for statement in view_sql(data, corpus):
        con.execute(statement)
    return con


def run_query(con: duckdb.DuckDBPyConnection, sql: str, output: str = "table",
              out: Path | None = None) -> str:
    """Run ``sql``: a table (DuckDB's box rendering) or CSV on standard output, or a CSV or
    Parquet file at ``out``. Returns what to tell the user ("" when the result was printed)."""
    if output not in FORMATS:
        raise QueryError(f"--format {output!r} is unknown; use table, csv or parquet.")
    if output == "parquet" and out is None:
        raise QueryError("--format parquet writes a file: give --out FILE.parquet.")
    if not sql:
        raise QueryError('give a SQL query, e.g. mcncl query "select label, count(*) from '
                         'manifest group by label", or use --shell.')

    def work() -> str:
        relation = con.sql(sql)
        if output == "table":
            print(relation)
        elif out is None:  # csv to standard output, so it pipes
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(relation.columns)
            writer.writerows(relation.fetchall())
        else:
            relation.to_csv(str(out)) if output == "csv" else relation.to_parquet(str(out))
            return f"{out} written"
        return ""

    try:
        return interruptible(con, work)
    except duckdb.Error as exc:
        raise QueryError(f"{exc}".splitlines()[0]) from None


def interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], str]) -> str:
    """``work()`` on a thread of its own, so that Ctrl-C stops a long query at once: Python
    raises KeyboardInterrupt only in the main thread between bytecodes, which a thread inside
    DuckDB never reaches, so the main thread waits in short joins and interrupts DuckDB."""
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["value"] = work()
        except BaseException as exc:  # handed to the main thread, raised there
            done["error"] = exc

    thread = threading.Thread(target=run, name="mcncl-query", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        con.interrupt()
        thread.join(5)
        raise
    if "error" in done:
        raise done["error"]
    return done["value"]


def shell(con: duckdb.DuckDBPyConnection) -> None:
    """An interactive SQL prompt: statements end with ``;``, Ctrl-D quits."""
    views = con.sql("select view_name from duckdb_views() where schema_name = 'main' and not "
                    "internal order by view_name").fetchall()
    print("SQL over: " + ", ".join(v for (v,) in views) + ". End with ; — Ctrl-D quits.",
          file=sys.stderr)
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


def sql_string(text: str | PathLike[str]) -> str:
    """``text`` as a SQL string literal: in single quotes, each ``'`` doubled.

    The one way a name or path enters SQL text where DuckDB takes no parameter (CREATE VIEW,
    the ``duckdb -init`` file); elsewhere pass it as a parameter (``?``)."""
    text = _no_nul(str(fspath(text)))
    return "'" + text.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """``name`` as a SQL identifier (a schema, a view): in double quotes, each ``"`` doubled."""
    return '"' + _no_nul(name).replace('"', '""') + '"'


def glob_literal(path: str | PathLike[str]) -> str:
    """``path`` as a DuckDB file pattern that matches that file only: DuckDB expands ``*``,
    ``?`` and ``[...]`` in every path it reads, so each becomes a one-character class."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in str(fspath(path)))


def _no_nul(text: str) -> str:
    if "\0" in text:
        raise QueryError(f"{text!r}: a name or path with a NUL character cannot be used in SQL; "
                         "rename it.")
    return text

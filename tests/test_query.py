from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mcncl.query import connect


def make_data(root: Path) -> Path:
    data = root / "data"
    (data / "manifests").mkdir(parents=True)
    (data / "features" / "c1" / "errors").mkdir(parents=True)
    (data / "models" / "c1").mkdir(parents=True)
    pq.write_table(pa.table({"utterance_id": ["a", "b"], "label": ["joy", "anger"],
                             "text": ["Great!", "Go away."]}), data / "manifests" / "c1.parquet")
    pq.write_table(pa.table({"utterance_id": ["x"], "label": ["joy"], "text": ["Hi"]}),
                   data / "manifests" / "c2.parquet")
    pq.write_table(pa.table({"utterance_id": ["a"], "embedding": [[1.0, 0.0]]}),
                   data / "features" / "c1" / "text.parquet")
    for stage in ("acoustic", "facial"):
        pq.write_table(pa.table({"utterance_id": ["b"], "stage": [stage], "kind": ["no_face"],
                                 "message": ["m"]}),
                       data / "features" / "c1" / "errors" / f"{stage}.parquet")
    pq.write_table(pa.table({"utterance_id": ["a", "b"], "label": ["joy", "anger"],
                             "predicted": ["joy", "joy"]}),
                   data / "models" / "c1" / "predictions.parquet")
    return data


def test_views_read_parquet_in_place(tmp_path: Path):
    con = connect(make_data(tmp_path), "c1")
    assert con.sql("select count(*) from manifest").fetchall() == [(2,)]
    assert con.sql("select count(*) from errors").fetchall() == [(2,)]  # every stage's table
    wrong = con.sql("select p.utterance_id, m.text from predictions p join manifest m "
                    "using (utterance_id) where p.label <> p.predicted").fetchall()
    assert wrong == [("b", "Go away.")]
    assert con.sql("select label from c2.manifest").fetchall() == [("joy",)]
    views = {r[0] for r in con.sql("select view_name from duckdb_views() "
                                   "where schema_name = 'main' and not internal").fetchall()}
    assert views == {"manifest", "text", "errors", "predictions"}  # no acoustic file, no view
    assert not list(tmp_path.rglob("*.duckdb")) and not list(tmp_path.rglob("*.db"))


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcncl", "query", *args, "--params",
                           str(cwd / "params.yaml")], capture_output=True, text=True, cwd=cwd)


def test_query_command_formats_and_errors(tmp_path: Path):
    make_data(tmp_path)
    (tmp_path / "params.yaml").write_text("corpora:\n  c1: {}\n")
    table = run(tmp_path, "select kind, count(*) as n from errors group by kind")
    assert table.returncode == 0 and "no_face" in table.stdout and "│" in table.stdout
    csv = run(tmp_path, "select utterance_id from manifest order by 1", "--format", "csv",
              "--out", "ids.csv")
    assert csv.returncode == 0
    assert (tmp_path / "ids.csv").read_text().split() == ["utterance_id", "a", "b"]
    piped = run(tmp_path, "select utterance_id from manifest order by 1", "--format", "csv")
    assert piped.returncode == 0 and piped.stdout.split() == ["utterance_id", "a", "b"]
    assert not (tmp_path / "query.csv").exists()  # nothing written beside the user's files
    parquet = run(tmp_path, "select 1", "--format", "parquet")
    assert parquet.returncode == 2 and "give --out FILE.parquet" in parquet.stderr
    init = run(tmp_path, "--init-file", "views.sql")
    assert "create or replace view main.manifest" in (tmp_path / "views.sql").read_text()
    assert init.returncode == 0
    bad = run(tmp_path, "select * from nowhere")
    assert bad.returncode == 2 and "nowhere" in bad.stderr
    shell = subprocess.run([sys.executable, "-m", "mcncl", "query", "--shell"], cwd=tmp_path,
                           input="select count(*)\n as n from manifest;\n", capture_output=True,
                           text=True)
    assert shell.returncode == 0 and "│     2 │" in shell.stdout


def test_ctrl_c_stops_a_long_query_within_a_second():
    """SIGINT (Ctrl-C) interrupts DuckDB mid-query: the process ends at once, not when the
    query is done (it would run for minutes)."""
    import signal
    import subprocess
    import sys
    import time

    slow = ("select count(*) from range(20000000000) t(a) where hash(a) % 97 = 3")
    code = ("import signal\n"  # as in a terminal: pytest-xdist's workers ignore SIGINT
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "import duckdb\nfrom mcncl.query import run_query\ncon = duckdb.connect()\n"
            f"print('started', flush=True)\nrun_query(con, {slow!r})\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "started"
    time.sleep(1.5)  # well inside the query
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        process.wait(timeout=10)
    finally:
        process.kill()
    assert time.monotonic() - sent < 1.5
    assert "KeyboardInterrupt" in process.stderr.read()

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from tests.test_meld import row, write_csv

MCNCL = [sys.executable, "-m", "mcncl"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MCNCL, *args], capture_output=True, text=True, cwd=cwd)


def test_corpus_prepare_writes_parquet_duckdb_reads(tmp_path: Path):
    write_csv(tmp_path / "train_sent_emo.csv", [row(1, "Hi!", "joy", 0, 0),
                                                 row(2, "Bye.", "sadness", 0, 1)])
    out = tmp_path / "out" / "m.parquet"
    result = run("corpus", "prepare", "meld", str(tmp_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "2 utterances" in result.stderr and "no_clip_folder: 1" in result.stderr
    counts = duckdb.sql(f"select label, count(*) from '{out}' group by label order by label")
    assert counts.fetchall() == [("joy", 1), ("sadness", 1)]
    assert [p.name for p in out.parent.iterdir()] == ["m.parquet"]  # no temporary left


def test_corpus_prepare_error_is_one_clear_line_and_keeps_old_file(tmp_path: Path):
    out = tmp_path / "m.parquet"
    out.write_bytes(b"previous")
    write_csv(tmp_path / "train_sent_emo.csv", [row(1, "Hi!", "happy", 0, 0)])
    result = run("corpus", "prepare", "meld", str(tmp_path), "--out", str(out))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: ") and "train_sent_emo.csv:2: label 'happy'" in lines[0]
    assert out.read_bytes() == b"previous"


def test_unknown_kind(tmp_path: Path):
    result = run("corpus", "prepare", "opus", str(tmp_path), "--out", str(tmp_path / "x.parquet"))
    assert result.returncode == 2
    assert "corpus kind 'opus' is unknown; use one of meld, iemocap, ravdess, csv" in result.stderr


def test_manifest_stage_reads_params(tmp_path: Path):
    write_csv(tmp_path / "c" / "dev_sent_emo.csv", [row(1, "Hi!", "joy", 0, 0)])
    (tmp_path / "params.yaml").write_text("corpora:\n  tiny:\n    kind: meld\n    root: c\n")
    result = run("manifest", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = duckdb.sql(f"select utterance_id from '{tmp_path}/data/manifests/tiny.parquet'")
    assert table.fetchall() == [("tiny/dev/dia0_utt0",)]
    # a real corpus with the small packaged encoder is pointed at the one that measured best
    hint = "`make mpnet`, then text: {model: data/encoders/all-mpnet-base-v2} in params.yaml."
    assert "tiny is a real corpus; all-mpnet-base-v2 scored 3.5 weighted-F1 and 4 macro-F1 points" \
        " above" in result.stderr
    assert hint in " ".join(result.stderr.split())
    with (tmp_path / "params.yaml").open("a") as params:
        params.write("text:\n  model: data/encoders/all-mpnet-base-v2\n")
    again = run("manifest", cwd=tmp_path)
    assert again.returncode == 0 and "all-mpnet" not in again.stderr, again.stderr


def test_a_user_error_is_one_line_with_status_2_and_a_bug_keeps_its_traceback():
    import typer
    from typer.testing import CliRunner

    from mcncl.cli import command

    app = typer.Typer()

    @command(app, "go")
    def go(what: str) -> None:
        if what == "missing":
            raise FileNotFoundError("x.parquet: not found; run `mcncl manifest` first.")
        raise KeyError(what)  # a bug, not the user's to fix

    @command(app, "other")
    def other() -> None:  # a second command, so typer keeps the command names
        pass

    user = CliRunner().invoke(app, ["go", "missing"])
    assert user.exit_code == 2
    assert user.output.strip() == "error: x.parquet: not found; run `mcncl manifest` first."
    bug = CliRunner().invoke(app, ["go", "oops"])
    assert isinstance(bug.exception, KeyError) and bug.exit_code == 1


def test_every_help_page_reads_as_plain_text():
    """What `mcncl [COMMAND] --help` shows holds no reStructuredText quotes (``x``)."""
    from typer.testing import CliRunner

    from mcncl.cli import app

    runner = CliRunner()
    pages = {"mcncl": runner.invoke(app, ["--help"])}
    for group in [None, *app.registered_groups]:
        typer_app = app if group is None else group.typer_instance
        for command in typer_app.registered_commands:
            words = [group.name] if group else []
            pages[" ".join(words + [command.name])] = runner.invoke(
                app, [*words, command.name, "--help"])
    assert len(pages) > 15
    assert all(page.exit_code == 0 for page in pages.values())
    marked = [name for name, page in pages.items() if "``" in page.output]
    assert not marked, marked

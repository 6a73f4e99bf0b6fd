"""Security and trust: hostile inputs that must not inject, and inputs that must fail loudly (issue 27)."""  # noqa: E501

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mcncl.config import ConfigError, load_params
from mcncl.query import QueryError, connect, sql_identifier, sql_string, view_sql
from mcncl.report import build_report
from tests.test_report import cells, make_run
from vocabulary.layout import Layout

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# SQL: corpus names and paths are data, never SQL (DuckDB views, `mcncl query`, the report)
# ---------------------------------------------------------------------------------------------

# names a user (or a hostile archive) can give a manifest file, so a corpus
PAYLOAD = "x\"; copy (select 42 as a) to 'pwned.csv'; create schema if not exists \"z"
HOSTILE = [
    PAYLOAD,  # breaks out of the quoted schema name
    "o'); copy (select 42 as a) to 'pwned2.csv'; select ('",  # out of a string literal
    "it's",
    'say "hi"',
    "semi;colon",
    "new\nline",
    "c*",  # a glob: must read its own files only, not every corpus starting with c
    "br[1]",
]
# a data folder whose own path is hostile too (the project may live anywhere)
HOSTILE_DIR = "da'ta\"; copy (select 1) to 'pwned3.csv'; --"


def _ident(name: str) -> str:
    """The test's own identifier quoting, independent of the code under test."""
    return '"' + name.replace('"', '""') + '"'


def _no_pwned(*roots: Path) -> None:
    for root in roots:
        assert not [p for p in root.rglob("pwned*")], f"a payload wrote a file under {root}"


def _corpora(data: Path, names: list[str]) -> None:
    """One manifest, text table and error table per corpus; each row names its corpus."""
    for name in names:
        layout = Layout(name, data)
        layout.manifest.parent.mkdir(parents=True, exist_ok=True)
        layout.errors.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"utterance_id": [f"{name}/1", f"{name}/2"],
                                 "label": ["joy", "anger"]}), layout.manifest)
        pq.write_table(pa.table({"utterance_id": [f"{name}/1"]}), layout.feature_table("text"))
        pq.write_table(pa.table({"utterance_id": [f"{name}/2"], "stage": ["text"],
                                 "kind": ["empty_text"], "message": ["m"]}),
                       layout.error_table("text"))


@pytest.fixture
def hostile_data(tmp_path: Path, monkeypatch) -> Path:
    """A data folder holding every hostile corpus and a plain ``cx`` (which ``c*`` must not
    read); the working directory is ``tmp_path``, where a relative ``COPY ... TO`` would land."""
    data = tmp_path / HOSTILE_DIR / "data"
    _corpora(data, [*HOSTILE, "cx"])
    monkeypatch.chdir(tmp_path)
    return data


def test_sql_helpers_quote_and_reject_nul():
    assert sql_string("it's") == "'it''s'"
    assert sql_identifier('say "hi"') == '"say ""hi"""'
    assert duckdb.sql(f"select {sql_string(PAYLOAD)} as {sql_identifier(PAYLOAD)}").fetchall() == [
        (PAYLOAD,)]
    with pytest.raises(QueryError, match="NUL"):
        sql_string("a\0b")
    with pytest.raises(QueryError, match="NUL"):
        sql_identifier("a\0b")


@pytest.mark.parametrize("current", HOSTILE)
def test_views_over_hostile_corpus_names_read_their_own_rows(hostile_data: Path, current: str):
    con = connect(hostile_data, current)
    for name in [*HOSTILE, "cx"]:
        schema = _ident(name)
        assert con.sql(f"select utterance_id from {schema}.manifest order by 1").fetchall() == [
            (f"{name}/1",), (f"{name}/2",)]
        assert con.sql(f"select utterance_id from {schema}.errors").fetchall() == [(f"{name}/2",)]
    assert con.sql("select count(*) from manifest").fetchall() == [(2,)]
    assert con.sql("select distinct utterance_id from text").fetchall() == [(f"{current}/1",)]
    schemas = {s for (s,) in con.sql("select schema_name from duckdb_schemas()").fetchall()}
    assert "z" not in schemas and "z.parquet" not in schemas  # nothing from the payload ran
    _no_pwned(hostile_data.parents[1], REPO)


def test_the_init_file_is_valid_sql_that_creates_the_same_views(hostile_data: Path):
    # written as `mcncl query --init-file` writes it, then run as one script
    script = ";\n".join(view_sql(hostile_data, PAYLOAD)) + ";\n"
    con = duckdb.connect()
    con.execute(script)
    assert con.sql(f"select count(*) from {_ident(PAYLOAD)}.manifest").fetchall() == [(2,)]
    assert con.sql("select utterance_id from manifest order by 1").fetchall() == [
        (f"{PAYLOAD}/1",), (f"{PAYLOAD}/2",)]
    _no_pwned(hostile_data.parents[1], REPO)


def test_query_command_with_a_hostile_manifest_beside_writes_nothing(tmp_path: Path):
    """The reported attack: a manifest saved under the payload's name, then `mcncl query`."""
    _corpora(tmp_path / "data", ["c1", PAYLOAD])
    (tmp_path / "params.yaml").write_text("corpora:\n  c1: {}\n")
    result = subprocess.run([sys.executable, "-m", "mcncl", "query",
                             "select count(*) as n from manifest", "--format", "csv"],
                            cwd=tmp_path, capture_output=True, text=True)
    _no_pwned(tmp_path, REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["n", "2"]


@pytest.mark.parametrize("name", ["c*", PAYLOAD, "o'); copy (select 42 as a) to 'pwned2.csv'; "
                                  "select ('", "new\nline"])
def test_the_report_reads_hostile_paths_as_files(tmp_path: Path, monkeypatch, name: str):
    monkeypatch.chdir(tmp_path)
    plain = tmp_path / "plain"
    make_run(plain)
    expected = build_report(Layout("c", plain))
    data = tmp_path / HOSTILE_DIR / "data"
    make_run(data)
    for folder in ("features", "models"):
        (data / folder / "c").rename(data / folder / name)
    (data / "manifests" / "c.parquet").rename(data / "manifests" / f"{name}.parquet")
    make_run(tmp_path / "cx-run")  # a corpus cx beside, which the glob c* would match
    (tmp_path / "cx-run" / "manifests" / "c.parquet").rename(data / "manifests" / "cx.parquet")
    (tmp_path / "cx-run" / "features" / "c").rename(data / "features" / "cx")
    page = build_report(Layout(name, data))
    for section in ("<h2>Confusion matrix</h2>", "<h2>Coverage: utterances",
                    "Errors per stage"):
        assert cells(page, section) == cells(expected, section), section
    _no_pwned(tmp_path, REPO)


# ---------------------------------------------------------------------------------------------
# params.yaml: a file that is missing, unreadable or wrong fails with one sentence naming the
# file and the key, never silently as defaults or as a converted value
# ---------------------------------------------------------------------------------------------


def _params_error(path: Path) -> str:
    """The message load_params raises for ``path``; it must be one sentence on one line."""
    with pytest.raises(ConfigError) as info:
        load_params(path)
    message = str(info.value)
    assert "\n" not in message and message.endswith("."), message
    assert message.startswith(f"{path}: "), message
    return message


def test_a_missing_params_file_is_an_error_not_the_defaults(tmp_path: Path):
    message = _params_error(tmp_path / "params.yaml")
    assert message == (f"{tmp_path / 'params.yaml'}: file not found; run from the project root "
                       "or pass --params PATH.")


def test_a_folder_given_as_params_is_an_error(tmp_path: Path):
    (tmp_path / "params.yaml").mkdir()
    assert "is a folder, not a params file" in _params_error(tmp_path / "params.yaml")


def test_params_that_are_not_utf8_name_the_byte(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"train: {seed: 13}\n# caf\xe9\n")
    assert "not UTF-8 text (byte 0xe9 at offset 23); save it as UTF-8" in _params_error(path)


def test_an_unreadable_params_file_is_an_error(tmp_path: Path, monkeypatch):
    path = tmp_path / "params.yaml"
    path.write_text("train: {seed: 13}\n")

    def denied(self, *args, **kwargs):  # chmod 0 binds no root, so the OS error is made here
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    assert "cannot be read (permission denied); make it readable or pass --params PATH." in (
        _params_error(path))


@pytest.mark.parametrize(("text", "key"), [
    ("train: {lrr: 0.1}\n", "train.lrr: unknown key (did you mean lr?); valid keys are epochs,"),
    ("corpora:\n  m: {model: {colour: red}}\n",
     "corpora.m.model.colour: unknown key; valid keys are modalities,"),
    ("corpora:\n  m: {kindd: meld}\n", "corpora.m.kindd: unknown key (did you mean kind?); "
     "valid keys are name, kind,"),
    ("trian: {epochs: 3}\n", "trian: unknown section (did you mean train?); valid sections are "
     "corpora, demo,"),
])
def test_an_unknown_key_names_the_file_and_its_full_path(tmp_path: Path, text: str, key: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert f"{path}: {key}" in _params_error(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("train: {epochs: '3'}\n",
     "train.epochs: expected an integer, got the string '3'; write it without quotes."),
    ("train: {epochs: 3.5}\n", "train.epochs: expected an integer, got the number 3.5;"),
    ("train: {epochs: true}\n", "train.epochs: expected an integer, got true;"),
    ("finetune: {enabled: 'false'}\n", "finetune.enabled: expected true or false, got the "
     "string 'false'; write it without quotes."),
    ("finetune: {enabled: 1}\n",
     "finetune.enabled: expected true or false, got the integer 1;"),
    ("model: {context: false}\n", "model.context: expected a string, got false;"),
    ("train: {lr: fast}\n", "train.lr: expected a number, got the string 'fast';"),
    ("train: {lr: false}\n", "train.lr: expected a number, got false;"),
    ("corpora:\n  m: {label_set: 4}\n",
     "corpora.m.label_set: expected a string, got the integer 4; quote it: \"4\"."),
    ("corpora:\n  m: {dev_actors: ['3']}\n",
     "corpora.m.dev_actors: expected a list of integers, got ['3'] (item 1 is the string '3');"),
    ("corpora:\n  m: {dev_actors: 3}\n",
     "corpora.m.dev_actors: expected a list of integers, got the integer 3;"),
    ("corpora:\n  m: {model: {modalities: text}}\n",
     "corpora.m.model.modalities: expected a list of strings, got the string 'text';"),
    ("train: 5\n", "train: expected a mapping of train settings"),
    ("- train\n", "expected a mapping of sections to their settings"),
])
def test_a_wrong_type_names_the_file_the_key_and_the_type(tmp_path: Path, text: str,
                                                           expected: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert f"{path}: {expected}" in _params_error(path)


def test_params_invalid_yaml_is_one_line_with_its_position(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: [3\n")
    assert "not valid YAML at line 3, column 1" in _params_error(path)


def test_params_values_of_the_right_type_load(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {lr: 1e-4, epochs: 3, grad_clip: 2}\n"  # 1e-4: a float (YAML 1.2)
                    "corpora:\n  m: {label_set: '4', dev_actors: [3], model: null}\n")
    params = load_params(path)
    assert (params.train.lr, params.train.epochs, params.train.grad_clip) == (1e-4, 3, 2.0)
    assert isinstance(params.train.grad_clip, float)  # an int is taken where a float goes
    corpus = params.corpus("m")
    assert (corpus.label_set, corpus.dev_actors, corpus.model) == ("4", (3,), None)


def test_the_cli_reports_a_missing_params_file_in_one_line(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "mcncl", "query", "select 1", "--params",
                             "nowhere.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: nowhere.yaml: file not found; run from the project "
                                     "root or pass --params PATH.")


@pytest.mark.parametrize("name", ["../../../victim", "/tmp/victim", "", ".hidden", "a/b", "..",
                                  "x y"])
def test_a_corpus_name_that_could_leave_data_is_refused_at_load(tmp_path: Path, name: str):
    """A corpus name becomes folder and file names under data/: one plain folder name only,
    refused when params.yaml is read (before any stage writes or deletes anything)."""
    path = tmp_path / "params.yaml"
    path.write_text(f"corpora:\n  {json.dumps(name)}: {{kind: meld, root: data/demo}}\n")
    with pytest.raises(ConfigError, match=re.escape(
            f"{path}: corpora: corpus name {name!r} is not one plain folder name; use letters, "
            "digits, _, . and - only, starting with a letter or digit (e.g. meld_text); "
            "rename it.")):
        load_params(path)
    if name not in (".hidden", "x y"):  # names a path could hold, but params may not
        with pytest.raises(ValueError, match=f"corpus name {re.escape(repr(name))} would "
                                             "leave data; name a corpus with one plain"):
            Layout(name)
    assert Layout("meld_text.v2-1").models == Path("data/models/meld_text.v2-1")

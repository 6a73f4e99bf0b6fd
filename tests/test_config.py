from __future__ import annotations

from pathlib import Path

import pytest

from mcncl.config import ConfigError, CorpusConfig, load_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_typed():
    params = load_params(REPO / "params.yaml")
    assert params.corpus == CorpusConfig()  # the shipped params are the documented defaults
    assert params.corpus.dev_actors == (11, 12)


def test_params_override_and_convert(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("corpus:\n  kind: iemocap\n  label_set: 4\n  dev_actors: ['3']\n")
    corpus = load_params(path).corpus
    assert (corpus.kind, corpus.label_set, corpus.dev_actors) == ("iemocap", "4", (3,))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("corpus:\n  kindd: meld\n", r"params.yaml: corpus: unknown key\(s\) kindd; valid keys"),
        ("corpus:\n  dev_fraction: lots\n", r"corpus.dev_fraction: 'lots' is not a valid"),
        ("corpus: [\n", "not valid YAML"),
    ],
)
def test_params_errors(tmp_path: Path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_params(path)

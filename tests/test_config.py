from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from extractors.registry import MODALITIES as EXTRACTED
from fusion.config import MODALITIES, TensorConfig
from mcncl.config import ConfigError, CorpusConfig, load_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_typed():
    params = load_params(REPO / "params.yaml")
    # shipped params = documented defaults, but the demo trains on one thread (reproducible)
    assert params.corpora == {"demo": replace(CorpusConfig(), train=replace(
        params.train, num_threads=1))}
    assert params.train.num_threads == 0 and params.acoustic.feature_set == "ComParE_2016"
    assert params.corpus().dev_actors == (11, 12)


def test_params_override_and_convert(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("corpora:\n  meld: {kind: meld}\n  iemo:\n    kind: iemocap\n"
                    "    label_set: 4\n    dev_actors: ['3']\n")
    params = load_params(path)
    corpus = params.corpus("iemo")
    assert (corpus.name, corpus.kind, corpus.label_set, corpus.dev_actors) == (
        "iemo", "iemocap", "4", (3,))
    assert params.corpus().name == "meld"  # the first listed is the default
    with pytest.raises(ConfigError, match="corpus 'ravdess' is not under corpora in params.yaml; "
                       "add it there or use one of meld, iemo."):
        params.corpus("ravdess")


def test_a_corpus_overrides_model_and_train_for_itself_only(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("corpora:\n  meld: {kind: meld, model: {modalities: [text], context: true}, "
                    "train: {epochs: 5}}\n  ravdess: {kind: ravdess}\n"
                    "model: {d_model: 64}\ntrain: {lr: 0.001}\n")
    params = load_params(path)
    meld, ravdess = (params.model_for(n) for n in ("meld", "ravdess"))
    assert (meld.modalities, meld.context, meld.d_model) == (("text",), True, 64)  # merged
    assert (ravdess.modalities, ravdess.d_model) == (("text", "acoustic", "facial"), 64)
    assert (params.train_for("meld").epochs, params.train_for("meld").lr) == (5, 0.001)
    assert params.train_for("ravdess") == params.train


def test_the_model_reads_the_modalities_the_extractors_write():
    assert sorted(MODALITIES) == sorted(EXTRACTED)  # one vocabulary: text, acoustic, facial


def test_the_earlier_modality_names_load_as_todays_with_a_hint(tmp_path: Path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text("corpora:\n  ravdess: {kind: ravdess, model: {modalities: [visual]}}\n"
                    "  meld: {kind: meld}\n"
                    "tensors: {audio_rate_hz: 5.0, max_audio_frames: 50, max_visual_frames: 20,"
                    " standardise: [audio, text]}\n"
                    "model: {modalities: [text, audio, visual], d_model: 64}\n")
    params = load_params(path)
    assert params.tensors == TensorConfig(acoustic_rate_hz=5.0, max_acoustic_frames=50,
                                          max_facial_frames=20, standardise=("acoustic", "text"))
    assert params.model.modalities == ("text", "acoustic", "facial")
    assert params.model_for("meld").modalities == ("text", "acoustic", "facial")
    assert params.model_for("ravdess").modalities == ("facial",)
    assert params.model_for("ravdess").d_model == 64
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: tensors.audio_rate_hz is now called acoustic_rate_hz; rename it there.",
        f"{path}: tensors.max_audio_frames is now called max_acoustic_frames; rename it there.",
        f"{path}: tensors.max_visual_frames is now called max_facial_frames; rename it there.",
        f"{path}: tensors.standardise: 'audio' is now called 'acoustic'; rename it there.",
        f"{path}: model.modalities: 'audio' is now called 'acoustic'; rename it there.",
        f"{path}: model.modalities: 'visual' is now called 'facial'; rename it there.",
        f"{path}: corpora.ravdess.model.modalities: 'visual' is now called 'facial'; rename it "
        "there."]
    load_params(REPO / "params.yaml")
    assert capsys.readouterr().err == ""  # the shipped params.yaml uses today's names
    path.write_text("tensors: {max_audio_frames: 50, max_acoustic_frames: 60}\n")
    with pytest.raises(ConfigError, match="tensors: max_audio_frames and max_acoustic_frames "
                       "are one setting, renamed; keep max_acoustic_frames only."):
        load_params(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("corpora:\n  m:\n    kindd: meld\n",
         r"params.yaml: corpora.m: unknown key\(s\) kindd; valid keys"),
        ("corpora:\n  m: {dev_fraction: lots}\n", r"corpora.m.dev_fraction: 'lots' is not a valid"),
        ("corpora: [a]\n", "corpora must map corpus names to their settings"),
        ("corpus:\n  kind: meld\n", r"unknown section\(s\) corpus \(a corpus now goes under "
         r"corpora: <name>:\); valid sections are corpora, demo"),
        ("corpora: [\n", "not valid YAML"),
        ("corpora:\n  m: {model: {colour: red}}\n",
         r"corpora.m.model: unknown key\(s\) colour; valid keys are modalities"),
        ("corpora:\n  m: {train: fast}\n",
         r"corpora.m.train must map train settings to values, e.g. train: \{epochs: 10\}"),
    ],
)
def test_params_errors(tmp_path: Path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_params(path)

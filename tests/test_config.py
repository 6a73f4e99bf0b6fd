from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass, replace
from pathlib import Path

import pytest
import yaml

from extractors.registry import MODALITIES as EXTRACTED
from fusion.config import MODALITIES, TensorConfig
from mcncl.config import ConfigError, CorpusConfig, Params, load_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_typed():
    params = load_params(REPO / "params.yaml")
    # shipped params = documented defaults, but the demo trains on one thread (reproducible)
    assert params.corpora == {"demo": replace(CorpusConfig(), train=replace(
        params.train, num_threads=1))}
    assert params.train.num_threads == 0 and params.acoustic.feature_set == "ComParE_2016"
    assert params.corpus().dev_actors == (11, 12)


def test_every_field_of_the_repo_params_is_the_value_written_there_or_its_default():
    """The strict types change no value: each key of params.yaml loads as written (a list as a
    tuple, an int in a float field as that float) and each absent key keeps its default."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params = load_params(REPO / "params.yaml")
    for name, corpus in raw["corpora"].items():
        _same(params.corpus(name), corpus, f"corpora.{name}", skip=("model", "train"))
        assert params.model_for(name) == replace(params.model, **corpus.get("model", {}))
        assert params.train_for(name) == replace(params.train, **corpus.get("train", {}))
    for section in fields(Params)[1:]:
        _same(getattr(params, section.name), raw.get(section.name) or {}, section.name)


def _same(config, written: dict, where: str, skip: tuple[str, ...] = ()) -> None:
    default = type(config)()
    for f in fields(config):
        if f.name in skip:
            continue
        value = getattr(config, f.name)
        if f.name not in written:
            assert value == getattr(default, f.name), f"{where}.{f.name}"
            continue
        expected = written[f.name]
        expected = tuple(expected) if isinstance(expected, list) else expected
        assert value == expected and type(value) in (type(expected), float), f"{where}.{f.name}"


def test_the_defaults_written_as_yaml_load_back_equal(tmp_path: Path):
    """Every field type that occurs (bool, int, float, str, tuples, X | None) takes its own
    default as YAML writes it."""
    def plain(value):
        if is_dataclass(value):
            return {k: plain(v) for k, v in asdict(value).items()}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return list(value) if isinstance(value, tuple) else value

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(plain(Params())))
    assert load_params(path) == Params()


def test_params_override(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("corpora:\n  meld: {kind: meld}\n  iemo:\n    kind: iemocap\n"
                    "    label_set: '4'\n    dev_actors: [3]\n")
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
         r"params.yaml: corpora.m.kindd: unknown key \(did you mean kind\?\); valid keys"),
        ("corpora:\n  m: {dev_fraction: lots}\n",
         r"corpora.m.dev_fraction: expected a number, got the string 'lots'; fix it."),
        ("corpora: [a]\n", "corpora must map corpus names to their settings"),
        ("corpus:\n  kind: meld\n", r"params.yaml: corpus: unknown section \(a corpus now goes "
         r"under corpora: <name>:\); valid sections are corpora, demo"),
        ("corpora: [\n", "not valid YAML"),
        ("corpora:\n  m: {model: {colour: red}}\n",
         r"corpora.m.model.colour: unknown key; valid keys are modalities"),
        ("train: {lrr: 1, epochz: 2}\n",
         r"params.yaml: train: unknown keys epochz, lrr; valid keys are epochs"),
        ("corpora:\n  m: {train: fast}\n",
         r"corpora.m.train must map train settings to values, e.g. train: \{epochs: 10\}"),
    ],
)
def test_params_errors(tmp_path: Path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_params(path)

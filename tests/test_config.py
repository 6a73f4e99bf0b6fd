from __future__ import annotations

import re
from dataclasses import asdict, fields, is_dataclass, replace
from pathlib import Path

import pytest
import yaml

from fusion.config import ModelConfig, TensorConfig
from fusion.tensors import EXTRACTOR_CONFIGS
from mcncl.config import ConfigError, CorpusConfig, Params, load_params, refuse_inert
from vocabulary import MODALITIES

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_typed():
    params = load_params(REPO / "params.yaml")
    # shipped params = documented defaults, but the demo trains on one thread and pins torch's
    # maths (the same bytes on any machine)
    assert params.corpora == {"demo": replace(CorpusConfig(), portable=True, train=replace(
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
    path.write_text("corpora:\n  meld: {kind: meld, model: {modalities: [text], context: past}, "
                    "train: {epochs: 5}}\n  ravdess: {kind: ravdess}\n"
                    "model: {d_model: 64}\ntrain: {lr: 0.001}\n")
    params = load_params(path)
    meld, ravdess = (params.model_for(n) for n in ("meld", "ravdess"))
    assert (meld.modalities, meld.context, meld.d_model) == (("text",), "past", 64)  # merged
    assert (ravdess.modalities, ravdess.d_model) == (("text", "acoustic", "facial"), 64)
    assert (params.train_for("meld").epochs, params.train_for("meld").lr) == (5, 0.001)
    assert params.train_for("ravdess") == params.train


def test_the_model_reads_the_modalities_the_extractors_write():
    # one vocabulary, in one order: text, acoustic, facial
    assert tuple(EXTRACTOR_CONFIGS) == ModelConfig().modalities == MODALITIES
    assert all(is_dataclass(getattr(load_params(REPO / "params.yaml"), m)) for m in MODALITIES)


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
        ("train: {ema_decay: 0.999}\n", r"params.yaml: train.ema_decay: unknown key \(deleted: "
         r"its effect was within seed noise, docs/model.md\); valid keys are epochs"),
        ("model: {projection_dim: 0}\n", r"model.projection_dim: unknown key \(deleted"),
        ("train: {hard_negatives: none}\n", r"train.hard_negatives: unknown key \(deleted: "
         r"hard_negative_beta: 0 is plain SupCon\)"),
        ("tensors: {dtype: float32}\n", r"tensors.dtype: unknown key \(deleted: the tensor "
         r"cache is always float16\)"),
        ("train: {logit_adjustment: 1.0}\n", r"train.logit_adjustment: unknown key \(deleted: "
         r"it cost weighted-F1 on MELD held out \(docs/model.md, class imbalance\)\)"),
        ("train: {class_weights: true}\n", r"train.class_weights: unknown key \(deleted: "
         r"it cost weighted-F1 on MELD held out \(docs/model.md, class imbalance\)\)"),
    ],
)
def test_params_errors(tmp_path: Path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_params(path)


@pytest.mark.parametrize(("text", "key", "why"), [
    ("train: {temperature: 0.2}\n", "train.temperature is 0.2",
     "train.contrastive_weight is 0; remove it or set train.contrastive_weight above 0"),
    ("train: {hard_negative_beta: 0.0}\n", "train.hard_negative_beta is 0.0",
     "train.contrastive_weight is 0"),
    ("train: {combine: average}\n", "train.combine is 'average'", "train.seeds is 1"),
    ("model: {context: none, max_speakers: 8}\n", "model.max_speakers is 8",
     "model.context is none; remove it or set model.context: auto, past or past_future"),
    ("corpora:\n  m: {kind: meld, train: {hard_negative_beta: 1.0}}\n",
     "corpora.m.train.hard_negative_beta is 1.0", "train.contrastive_weight is 0"),
])
def test_a_setting_that_cannot_act_is_refused(tmp_path: Path, text: str, key: str, why: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {key} but cannot act while {why}")):
        refuse_inert(load_params(path), path)


def test_a_setting_that_acts_for_some_corpus_or_keeps_its_default_is_accepted(tmp_path: Path):
    refuse_inert(load_params(REPO / "params.yaml"), REPO / "params.yaml")
    path = tmp_path / "params.yaml"
    path.write_text("corpora:\n  meld: {kind: meld}\n"
                    "  ravdess: {kind: ravdess, train: {contrastive_weight: 0.1}}\n"
                    "train: {temperature: 0.2, hard_negative_beta: 2.0}\n"  # acts for ravdess
                    "model: {context: past, max_speakers: 8}\n")
    refuse_inert(load_params(path), path)
    path.write_text("train: {combine: average, temperature: 0.1}\n")  # temperature: the default
    refuse_inert(load_params(path), path, seeds=3)  # mcncl train --seeds 3
    path.write_text("train: {temperature: 0.2, combine: average}\n"
                    "model: {context: none, max_speakers: 8}\n")
    with pytest.raises(ConfigError, match=re.escape(
            f"{path}: settings that cannot act: train.temperature (train.contrastive_weight is "
            "0), train.combine (train.seeds is 1), model.max_speakers (model.context is none); "
            "remove them or turn on what they need.")):
        refuse_inert(load_params(path), path)


def test_mcncl_train_refuses_a_setting_that_cannot_act(tmp_path: Path):
    from typer.testing import CliRunner

    from mcncl.cli import app

    path = tmp_path / "params.yaml"
    path.write_text("train: {temperature: 0.2}\n")
    done = CliRunner().invoke(app, ["train", "--params", str(path)])
    assert done.exit_code == 2
    assert "train.temperature is 0.2 but cannot act" in " ".join(done.output.split())

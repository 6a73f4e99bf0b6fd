"""MCN-CL against plain baselines on the real data in ../shared/data.

    python bench/realdata.py [--task meld-text|ravdess-audio|both] [--configs ce,supcon,...]
                             [--seeds 3] [--epochs N] [--cv K] [--set train.lr=0.001 ...]
                             [--work DIR] [--jobs N] [--in-process]

meld-text: MELD train/dev transcripts; the text extractor's sentence embeddings + logistic
regression (the reference: dev weighted-F1 50.4) versus MCN-CL on the token embeddings with
``model.modalities: [text]``.
ravdess-audio: RAVDESS speech; eGeMAPSv02 functionals + standardised logistic regression
versus MCN-CL with ``model.modalities: [acoustic]``: actors 01-10 train, 11-12 dev, or with
``--cv K`` the speaker-independent K-fold cross-validation of ``fusion/cv.py`` (fold k tests,
fold k + 1 selects), the regression on the same folds and the same (speaker or train)
normalisation, with ``tensors.speaker_norm`` speaker (``--norms none,speaker`` for both), each
seed's scores averaged over the folds, ``--seeds`` seeds.
Without ``--cv`` nothing is selected on what is reported (:func:`held_out`): every tenth
train dialogue (MELD) or train actor (RAVDESS), in sorted order, becomes the inner dev split
that stops training and picks the epoch, and the corpus's dev split is only scored, as the
test split (the MELD test split is not here).
``--set acoustic.feature_set=ComParE_2016`` (a setting of the task's extractor) extracts
again into a feature folder of its own.
Each configuration (``CONFIGS``: named params overrides, applied on top of params.yaml and
then ``--set``) runs ``--seeds`` seeds; the table gives each seed's score and the median.
With ``--set train.seeds=3 --set train.combine=average`` each run is a seed ensemble of 3
(seeds 13-15, 16-18, 19-21 for ``--seeds 3``), scored as one model.
Features go through the real flows (cached under data/cache), the model through the real
tensor cache and training loop. A new task is one more entry in ``TASKS``. On a machine with
many cores or a GPU, ``--jobs N`` trains the configurations' seeds side by side and
``--in-process`` extracts without Prefect (bench/side_by_side.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mcncl.offline import go_offline

go_offline()

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from side_by_side import extract_in_process, run_jobs  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from extractors.base import config_hash  # noqa: E402
from extractors.corpora import prepare_corpus  # noqa: E402
from fusion.ablations import with_overrides  # noqa: E402
from fusion.cv import run_cv  # noqa: E402
from fusion.data import load_split  # noqa: E402
from fusion.evaluate import load_model  # noqa: E402
from fusion.metrics import scores  # noqa: E402
from fusion.seeds import train_seeds  # noqa: E402
from fusion.tensors import build_tensors  # noqa: E402
from fusion.train import predict  # noqa: E402
from mcncl.config import Params, load_params  # noqa: E402
from vocabulary.atomic import write_parquet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Task:
    kind: str  # corpus adapter
    root: Path  # corpus folder
    modality: str  # the extraction stage whose features the model reads (its one input)
    column: str  # that table's pooled column the logistic regression reads
    group: str  # manifest column: utterances that stay together in the inner dev split


TASKS = {
    "meld-text": Task("meld", SHARED / "meld", "text", "embedding", "dialogue_id"),
    "ravdess-audio": Task("ravdess", SHARED / "ravdess_speech", "acoustic", "functionals",
                          "speaker"),
    "emorynlp-text": Task("csv", SHARED / "emorynlp" / "corpus.csv", "text", "embedding",
                          "dialogue_id"),
}
CONTRASTIVE = {"train.contrastive_weight": 0.1, "train.temperature": 0.1}  # tuned on dev
CONFIGS: dict[str, dict[str, object]] = {  # name: params overrides
    "params": {},
    "ce": {"train.contrastive_weight": 0.0},
    "supcon": {**CONTRASTIVE, "train.hard_negative_beta": 0.0},
    "supcon-hn": {**CONTRASTIVE},  # hard negatives at train.hard_negative_beta (params)
    "none": {"model.context": "none"},
    "past": {"model.context": "past"},
    "past_future": {"model.context": "past_future"},
}


def prepare(task: str, params: Params, work: Path, in_process: bool = False,
            sets: dict | None = None) -> tuple[Path, Path]:
    """The task's manifest and feature folder (extracted once per extractor config; the cache
    makes reruns quick).

    ``sets`` keys of the task's extraction section (``acoustic.feature_set``) change what is
    extracted; each such setting gets a feature folder of its own."""
    spec = TASKS[task]
    mine = {k: v for k, v in (sets or {}).items() if k.startswith(f"{spec.modality}.")}
    config = with_overrides(mine, **{spec.modality: getattr(params, spec.modality)})
    tag = "".join(f"-{k.split('.')[1]}={Path(str(v)).name}" for k, v in sorted(mine.items()))
    chash = config_hash(config[spec.modality])  # a changed default extracts anew too
    manifest, features = work / f"{task}.parquet", work / f"{task}{tag}-{chash[:8]}"
    if not (features / f"{spec.modality}.parquet").is_file():
        table, _ = prepare_corpus(spec.kind, spec.root, name=task.split("-")[0],
                                  dev_actors=(11, 12))
        write_parquet(table, manifest)
        if in_process:
            extract_in_process(spec.modality, manifest, features, config[spec.modality])
        else:
            from flows.extract import run_extraction

            extract = replace(params.extract, cache_dir=str(REPO / "data" / "cache"))
            run_extraction(spec.modality, manifest, features, extract, config[spec.modality])
    return manifest, features


def model_sets(task: str, sets: dict) -> dict:
    """``sets`` without the task's extraction settings (those went to :func:`prepare`)."""
    return {k: v for k, v in sets.items() if not k.startswith(f"{TASKS[task].modality}.")}


def sections(params: Params, task: str, overrides: dict) -> dict:
    base = {"tensors": params.tensors, "train": params.train,
            "model": replace(params.model, modalities=(TASKS[task].modality,))}
    return with_overrides(overrides, **base)


def held_out(task: str, manifest: Path) -> Path:
    """The manifest with every tenth train group (in sorted order) as the inner dev split and
    the corpus's dev split as test: selection never sees what is reported."""
    table = pq.read_table(manifest)
    split, groups = table.column("split").to_pylist(), table.column(TASKS[task].group)
    inner = set(sorted({g for g, s in zip(groups.to_pylist(), split, strict=True)
                        if s == "train"})[::10])
    renamed = ["test" if s == "dev" else "dev" if s == "train" and g in inner else s
               for g, s in zip(groups.to_pylist(), split, strict=True)]
    out = manifest.with_name(f"{manifest.stem}-held-out.parquet")
    write_parquet(table.set_column(table.schema.get_field_index("split"), "split",
                                   pa.array(renamed)), out)
    return out


def tensors_for(manifest: Path, features: Path, config, work: Path) -> Path:
    """The tensor cache of these features, this manifest and this tensor config (built once)."""
    key = hashlib.sha1(json.dumps([manifest.name, asdict(config)],
                                  sort_keys=True).encode()).hexdigest()[:10]
    out = work / f"{features.name}-tensors-{key}"
    if not (out / "meta.json").is_file():
        build_tensors(manifest, features, out, config)
    return out


def baseline(manifest: Path, features: Path, column: str,
             previous: bool = False) -> tuple[float, float, float]:
    """The regression trained on train, scored on dev: weighted-F1, macro-F1, accuracy. With
    ``previous``, each utterance's vector is followed by its dialogue's previous turn's (zeros
    for a first turn)."""
    m = pq.read_table(manifest, columns=["utterance_id", "split", "label", "dialogue_id",
                                         "turn"]).to_pandas()
    f = pq.read_table(features, columns=["utterance_id", column]).to_pandas()
    data = m.merge(f, on="utterance_id").sort_values(["dialogue_id", "turn"])
    vectors = np.stack(data[column].to_numpy())
    if previous:
        before = np.zeros_like(vectors)
        same = (data["dialogue_id"].to_numpy()[1:] == data["dialogue_id"].to_numpy()[:-1])
        before[1:][same] = vectors[:-1][same]
        vectors = np.concatenate([vectors, before], axis=1)
    split = data["split"].to_numpy()
    x = {s: vectors[split == s] for s in ("train", "dev")}
    y = {s: data["label"].to_numpy()[split == s] for s in ("train", "dev")}
    predicted = logistic().fit(x["train"], y["train"]).predict(x["dev"])
    return (f1_score(y["dev"], predicted, average="weighted"),
            f1_score(y["dev"], predicted, average="macro"), accuracy_score(y["dev"], predicted))


def logistic():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))


def run_dev(task: str, names: list[str], sets: dict, seeds: int, epochs: int | None,
            work: Path, jobs: int = 1, in_process: bool = False) -> None:
    """The baseline on the corpus's dev split, then each configuration's scores there per
    seed, selected on the inner dev split (:func:`held_out`)."""
    params = load_params(REPO / "params.yaml")
    manifest, features = prepare(task, params, work, in_process, sets)
    sets = model_sets(task, sets)
    spec = TASKS[task]
    for label, previous in (("logistic regression", False),
                            ("logistic regression + previous turn", True)):
        base_f1, base_macro, _ = baseline(manifest, features / f"{spec.modality}.parquet",
                                          spec.column, previous)
        print(f"| {task} | {label} | {100 * base_f1:.1f} | | {100 * base_macro:.1f} | |",
              flush=True)
    manifest = held_out(task, manifest)
    calls = []
    for name in names:
        chosen = sections(params, task, {**CONFIGS[name], **sets})
        tensor_dir = tensors_for(manifest, features, chosen["tensors"], work)
        n = chosen["train"].seeds  # > 1: each run trains n seeds (train.combine)
        calls += [(f"{name} seed {i}", tensor_dir, work, chosen["model"],
                   replace(chosen["train"], seed=chosen["train"].seed + n * i,
                           epochs=epochs or chosen["train"].epochs))
                  for i in range(seeds)]
    values = iter(run_jobs(held_out_f1, calls, jobs))
    for name in names:
        mine = [next(values) for _ in range(seeds)]
        for i, rule in enumerate(TAU_RULES):
            print(f"| {task} | {name}, {rule} | {_summary([r[2 * i] for r in mine])} | "
                  f"{_summary([r[2 * i + 1] for r in mine])} |", flush=True)


# The post-hoc logit adjustment (Menon et al., ICLR 2021) that the model applied until it was
# deleted (docs/model.md, class imbalance): argmax log p(y|x) - τ log prior(y), τ from TAUS
# chosen on the inner dev split by each rule. Kept here to show what it does on held-out data.
TAUS = tuple(i / 4 for i in range(13))  # 0, 0.25, ..., 3
TAU_RULES = ("as trained", "τ by dev macro-F1", "τ by dev weighted-F1",
             "τ by dev macro-F1, halved")


def adjusted(probs: np.ndarray, log_prior: np.ndarray, tau: float) -> np.ndarray:
    return (np.log(np.maximum(probs, 1e-12)) - tau * log_prior).argmax(1)


def held_out_f1(name: str, tensor_dir: Path, work: Path, model, config) -> list[float]:
    """One training (``train.seeds`` of them, combined) in a scratch folder, selected on the
    inner dev split: the kept model's test weighted-F1 and macro-F1, in points, for each rule
    of :data:`TAU_RULES`."""
    with tempfile.TemporaryDirectory(dir=work) as out:
        train_seeds(tensor_dir, Path(out), model, config, echo=lambda *_: None)
        trained, saved = load_model(Path(out))
    cpu = torch.device("cpu")
    names = saved["meta"]["labels"]
    counts = np.bincount(load_split(tensor_dir, "train", cpu)["label"].numpy(),
                         minlength=len(names)).clip(min=1)
    log_prior = np.log(counts / counts.sum())
    dev_probs, dev_labels = predict(trained, load_split(tensor_dir, "dev", cpu), 128)
    probs, labels = predict(trained, load_split(tensor_dir, "test", cpu), 128)

    def best_tau(key: str) -> float:
        return TAUS[int(np.argmax([scores(dev_labels, adjusted(dev_probs, log_prior, t),
                                          names)[key] for t in TAUS]))]

    by_macro, by_weighted = best_tau("macro_f1"), best_tau("weighted_f1")
    values, notes = [], []
    for rule, tau in zip(TAU_RULES, (0.0, by_macro, by_weighted, by_macro / 2), strict=True):
        scored = scores(labels, adjusted(probs, log_prior, tau), names)
        values += [100 * scored["weighted_f1"], 100 * scored["macro_f1"]]
        notes.append(f"{rule} (τ {tau:g}) {values[-2]:.1f}/{values[-1]:.1f}")
    print(f"  {name}: context {saved['model_config']['context']}, epoch {saved['epoch']}, "
          f"inner dev weighted-F1 {100 * saved['dev']['weighted_f1']:.1f}; test weighted/"
          "macro-F1: " + "; ".join(notes), flush=True)
    return values


def _summary(values: list[float]) -> str:
    """Each seed's value, then mean ± std and the median."""
    return (f"{' '.join(f'{v:.1f}' for v in values)} | {_mean_std(values)}, median "
            f"{statistics.median(values):.1f}")


def lr_on_folds(cv_dir: Path, k: int) -> tuple[float, float]:
    """The regression on each fold's functionals, normalised as the model's were: its
    weighted-F1 and macro-F1 (points), averaged over the folds.

    It trains on the fold's train and dev speakers (it selects nothing) and scores test.
    """
    values = []
    for i in range(k):
        tensors = cv_dir / f"fold-{i}" / "tensors"
        part = {s: load_split(tensors, s, torch.device("cpu")) for s in ("train", "dev", "test")}
        x = np.concatenate([part[s]["functionals"].float().numpy() for s in ("train", "dev")])
        y = np.concatenate([part[s]["label"].numpy() for s in ("train", "dev")])
        predicted = logistic().fit(x, y).predict(part["test"]["functionals"].float().numpy())
        truth = part["test"]["label"].numpy()
        values.append([100 * f1_score(truth, predicted, average=a) for a in ("weighted", "macro")])
    weighted, macro = np.mean(values, axis=0)
    return float(weighted), float(macro)


def run_folds(task: str, names: list[str], sets: dict, k: int, epochs: int | None,
              work: Path, norms: tuple[str, ...] = ("speaker",), seeds: int = 1) -> None:
    """Speaker-independent CV of each configuration (fold k tests, fold k + 1 selects the
    epoch and the seed of ``train.seeds``), ``seeds`` times: each seed's weighted-F1 and
    macro-F1 averaged over the folds."""
    params = load_params(REPO / "params.yaml")
    manifest, features = prepare(task, params, work, sets=sets)
    tag = "-".join(f"{k}={v}" for k, v in sets.items() if k != "train.num_threads")
    sets = model_sets(task, sets)
    for norm in norms:
        for name in names:
            chosen = sections(params, task, {"tensors.speaker_norm": norm, **CONFIGS[name],
                                             **sets})
            rows = []  # per seed: weighted-F1, macro-F1
            for i in range(seeds):
                config = replace(chosen["train"], epochs=epochs or chosen["train"].epochs,
                                 seed=chosen["train"].seed + chosen["train"].seeds * i)
                out = work / f"cv-{task}-{norm}-{name}-{config.seed}{'-' + tag if tag else ''}"
                summary = run_cv(manifest, features, out, chosen["tensors"], chosen["model"],
                                 config, k, echo=lambda *_: None)
                rows.append((100 * summary["weighted_f1_mean"], 100 * summary["macro_f1_mean"]))
                print(f"  {name} ({norm}) seed {config.seed}: " + ", ".join(
                    f"{v:.1f}" for v in rows[-1]), flush=True)
            if name == names[0]:
                lr = lr_on_folds(out, k)
                print(f"| {task} | logistic regression | {norm} | {lr[0]:.1f} | | {lr[1]:.1f} "
                      "| |", flush=True)
            print(f"| {task} | {name} | {norm} | {_summary([r[0] for r in rows])} | "
                  f"{_summary([r[1] for r in rows])} |", flush=True)


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def _sets(items: list[str]) -> dict:
    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*TASKS, "both"], default="both")
    parser.add_argument("--configs", default="params",
                        help=f"comma-separated: {', '.join(CONFIGS)}")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--cv", type=int, default=0, help="folds (ravdess-audio); 0 = dev split")
    parser.add_argument("--norms", default="speaker", help="--cv: tensors.speaker_norm")
    parser.add_argument("--set", action="append", default=[], help="section.key=value")
    parser.add_argument("--work", type=Path, default=None, help="keep features here")
    parser.add_argument("--jobs", type=int, default=1, help="trainings side by side (dev split)")
    parser.add_argument("--in-process", action="store_true",
                        help="extract without Prefect (a GPU box with torch alone)")
    args = parser.parse_args()
    names, sets = args.configs.split(","), _sets(args.set)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for task in TASKS if args.task == "both" else [args.task]:
            if args.cv:
                print("| task | model | speaker norm | weighted-F1 per seed (mean of the folds) "
                      "| mean ± std, median | macro-F1 per seed | mean ± std, median |\n"
                      "|---|---|---|---|---|---|---|")
                run_folds(task, names, sets, args.cv, args.epochs, work,
                          tuple(args.norms.split(",")), args.seeds)
            else:
                print("| task | model | weighted-F1 per seed | mean ± std, median | macro-F1 "
                      "per seed | mean ± std, median |\n|---|---|---|---|---|---|")
                run_dev(task, names, sets, args.seeds, args.epochs, work, args.jobs,
                        args.in_process)


if __name__ == "__main__":
    main()

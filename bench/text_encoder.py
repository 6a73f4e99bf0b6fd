"""Frozen versus fine-tuned text encoder on MELD (train/dev), text only, and the context window.

    python bench/text_encoder.py [--contexts 0,1,2,4] [--seeds 13,14,15] [--epochs N]
                                 [--finetune-epochs N] [--rows frozen,tuned,context]
                                 [--finetune-only] [--work data/bench/text_encoder]
                                 [--jobs N] [--in-process] [--text-model FOLDER]
                                 [--layers mean|last|N|a-b]

Rows: the frozen encoder (``text.model``: the packaged MiniLM unless ``--text-model`` names a
local folder); the encoder fine-tuned with k = 0 (when 0 is among ``--contexts``); with
the best k > 0 (chosen by the fine-tuned classifier's own dev weighted-F1, dev only); and
that encoder's features with ``model.context: past_future``. Each row is MCN-CL text-only trained on
train, the epoch selected on dev, dev weighted-F1 and accuracy as medians over the seeds. Also
printed: each fine-tuning's classifier dev score and seconds per epoch. Every step goes
through the project's real code (``finetune_text``, the extraction flow with its cache under
``data/cache``, the tensor cache, training); a finished fine-tuning is reused when its card
matches the settings, so an interrupted run resumes. The test split is never read (MELD's
shared copy has none). On a machine with many cores or a GPU, ``--jobs N`` trains the rows'
seeds side by side and ``--in-process`` extracts without Prefect (only torch and
sentence-transformers needed; see bench/side_by_side.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, replace
from pathlib import Path

from mcncl.offline import go_offline

go_offline()

from side_by_side import extract_in_process, run_jobs  # noqa: E402

from extractors.corpora import prepare_corpus  # noqa: E402
from fusion.evaluate import evaluate  # noqa: E402
from fusion.tensors import build_tensors  # noqa: E402
from fusion.text_finetune import finetune_text, read_card, text_config_for  # noqa: E402
from fusion.train import train  # noqa: E402
from mcncl.config import load_params  # noqa: E402
from vocabulary.atomic import write_parquet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MELD = REPO.parent / "shared" / "data" / "meld"


def encoder(work: Path, manifest: Path, k: int, epochs: int | None, params) -> Path:
    """The encoder fine-tuned with context k (reused when its card has the same settings)."""
    out = work / f"encoder-k{k}"
    config = replace(params.finetune, enabled=True, corpora=(),
                     epochs=epochs or params.finetune.epochs)
    text = replace(params.text, context=k)
    if (out / "card.json").is_file():
        card = read_card(out)
        if (card.get("params") == json.loads(json.dumps(asdict(config))) and card["context"] == k
                and card["base_model"] == text.model):
            return out
    finetune_text(manifest, out, config, text)
    return out


def features(work: Path, manifest: Path, name: str, text, params, in_process: bool) -> Path:
    out = work / name
    if in_process:
        extract_in_process("text", manifest, out, text)
    else:
        from flows.extract import run_extraction

        extract = replace(params.extract, cache_dir=str(REPO / "data" / "cache"))
        run_extraction("text", manifest, out, extract, text)
    return out


def tensors_of(work: Path, manifest: Path, feats: Path, params) -> Path:
    out = work / f"{feats.name}-tensors"
    build_tensors(manifest, feats, out, params.tensors)
    return out


def train_and_score(tensors: Path, out: Path, model, config) -> tuple[float, float]:
    """One MCN-CL run: dev weighted-F1 and accuracy of its best epoch."""
    train(tensors, out, model, config, echo=lambda *_: None)
    dev = evaluate(tensors, out, split="dev")
    print(f"  {out.name}: dev weighted-F1 {100 * dev['weighted_f1']:.1f}", flush=True)
    return dev["weighted_f1"], dev["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="0,1,2,4")
    parser.add_argument("--seeds", default="13,14,15")
    parser.add_argument("--epochs", type=int, default=None, help="MCN-CL epochs")
    parser.add_argument("--finetune-epochs", type=int, default=None)
    parser.add_argument("--finetune-only", action="store_true")
    parser.add_argument("--rows", default="frozen,tuned,context",
                        help="which MCN-CL rows: frozen, tuned (k = 0 and the best k), context")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench" / "text_encoder")
    parser.add_argument("--jobs", type=int, default=1, help="MCN-CL runs side by side")
    parser.add_argument("--in-process", action="store_true",
                        help="extract without Prefect (a GPU box with torch alone)")
    parser.add_argument("--text-model", default=None,
                        help="the encoder to fine-tune (default: params.yaml's text.model); "
                        "give each encoder its own --work folder, whose runs it replaces")
    parser.add_argument("--layers", default=None,
                        help="text.layers of the extracted features (default: params.yaml's)")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    params = replace(params, text=replace(params.text,
                                          model=args.text_model or params.text.model,
                                          layers=args.layers or params.text.layers))
    model_name = Path(params.text.model).name
    layers = f"layers-{params.text.layers}"  # feature folders, one per text.layers
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    table, _ = prepare_corpus("meld", MELD, name="meld")
    manifest = work / "meld.parquet"
    write_parquet(table, manifest)
    contexts = [int(k) for k in args.contexts.split(",")]
    cards = {}
    for k in contexts:
        cards[k] = read_card(encoder(work, manifest, k, args.finetune_epochs, params))
        epochs = cards[k]["epochs"]
        print(f"fine-tuned k={k}: classifier dev weighted-F1 "
              f"{100 * cards[k]['dev_weighted_f1']:.1f} (epoch {cards[k]['best_epoch']}), "
              f"{statistics.median(e['seconds'] for e in epochs):.0f} s/epoch", flush=True)
    if args.finetune_only:
        return
    best = max((k for k in contexts if k > 0), key=lambda k: cards[k]["dev_weighted_f1"],
               default=0)
    wanted = set(args.rows.split(","))
    rows = []  # (name, k, tensor folder, model.context)
    if "frozen" in wanted:
        feats = features(work, manifest, f"frozen-{layers}", params.text, params, args.in_process)
        rows.append((f"frozen {model_name}", None, tensors_of(work, manifest, feats, params),
                     False))
    for k in dict.fromkeys(c for c in (0, best) if c in cards):  # best is 0 when no k > 0 ran
        if not {"tuned", "context"} & wanted:
            continue
        text = text_config_for(work / f"encoder-k{k}", replace(params.text, context=k))
        tensors = tensors_of(work, manifest,
                             features(work, manifest, f"tuned-k{k}-{layers}", text, params,
                                      args.in_process), params)
        if "tuned" in wanted:
            rows.append((f"{model_name} fine-tuned, k = {k}", k, tensors, False))
        if "context" in wanted and k == best:
            rows.append((f"{model_name} fine-tuned, k = {k}, model.context: past_future", k,
                         tensors, True))
    seeds = [int(s) for s in args.seeds.split(",")]
    calls = [(tensors, work / f"{tensors.name[:-len('-tensors')]}-model-{seed}"
              f"{'-ctx' if context else ''}",
              replace(params.model, modalities=("text",),
                      context="past_future" if context else "none"),
              replace(params.train, seed=seed, epochs=args.epochs or params.train.epochs))
             for _, _, tensors, context in rows for seed in seeds]
    scores = iter(run_jobs(train_and_score, calls, args.jobs))
    results = []
    for name, k, _, _ in rows:
        mine = [next(scores) for _ in seeds]
        results.append((name, k, statistics.median(f for f, _ in mine),
                      statistics.median(a for _, a in mine)))
    print(f"\n| MELD text only, MCN-CL (median of {len(seeds)} seeds) | dev weighted-F1 | "
          "dev accuracy | fine-tuned classifier alone, dev weighted-F1 |\n|---|---|---|---|")
    for name, k, f1, acc in results:
        own = f"{100 * cards[k]['dev_weighted_f1']:.1f}" if k is not None else "—"
        print(f"| {name} | {100 * f1:.1f} | {100 * acc:.1f} | {own} |")


if __name__ == "__main__":
    main()

"""Which layers of the frozen text encoder carry emotion: a logistic-regression probe on MELD.

    python bench/text_layers.py [--limit N]

Each MELD train/dev utterance (``../shared/data/meld``) goes through the packaged MiniLM once;
every hidden state (the embedding output and each layer) is mean-pooled over the tokens, and a
standardised logistic regression fitted on train scores dev weighted-F1 per layer, for the
mean of layers 1 to the last and for the mean of every hidden state. The figures behind
``text.layers`` (docs/model.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mcncl.offline import go_offline

go_offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from realdata import SHARED, logistic  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from extractors.configs import PACKAGED_MODEL  # noqa: E402
from extractors.corpora import prepare_corpus  # noqa: E402
from extractors.text.extractor import load_encoder, model_path  # noqa: E402


def pooled_states(texts: list[str], batch: int = 128) -> np.ndarray:
    """Utterances × hidden states × width: each state's mean over the tokens."""
    model = load_encoder(model_path(PACKAGED_MODEL))
    encoder, tokenizer = model[0].auto_model, model.tokenizer
    parts = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            tokens = tokenizer(texts[i:i + batch], padding=True, truncation=True,
                               max_length=128, return_tensors="pt")
            states = encoder(**tokens, output_hidden_states=True).hidden_states
            mask = tokens["attention_mask"].unsqueeze(-1).float()
            parts.append(torch.stack([(h * mask).sum(1) / mask.sum(1) for h in states], 1))
    return torch.cat(parts).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="utterances per split (0: all)")
    args = parser.parse_args()
    table, _ = prepare_corpus("meld", Path(SHARED / "meld"), name="meld")
    rows = table.select(["split", "text", "label"]).to_pandas()
    rows = rows[rows.split.isin(["train", "dev"])]
    if args.limit:
        rows = rows.groupby("split").head(args.limit)
    x = pooled_states(rows.text.tolist())
    train, dev = (rows.split == "train").to_numpy(), (rows.split == "dev").to_numpy()
    y = rows.label.to_numpy()

    def score(features: np.ndarray) -> float:
        predicted = logistic().fit(features[train], y[train]).predict(features[dev])
        return 100 * f1_score(y[dev], predicted, average="weighted")

    print("| hidden state | dev weighted-F1 |\n|---|---|")
    for layer in range(x.shape[1]):
        name = "embedding output" if layer == 0 else f"layer {layer}"
        print(f"| {name} | {score(x[:, layer]):.1f} |")
    print(f"| mean of layers 1-{x.shape[1] - 1} | {score(x[:, 1:].mean(1)):.1f} |")
    print(f"| mean of every hidden state | {score(x.mean(1)):.1f} |")


if __name__ == "__main__":
    main()

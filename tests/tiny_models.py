"""Tiny, randomly initialised Hugging Face model folders built in the tests (nothing downloads).

They stand where a user's local model folder would: a BERT text encoder with its own
WordPiece vocabulary, and wav2vec2 / HuBERT / WavLM speech encoders with the standard 20 ms
convolutional front end but a hidden size of 32.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ["i", "am", "so", "happy", "sad", "angry", "this", "is", "great", "terrible", "you",
         "are", "what", "no", "yes", "oh", "my", "god", "really", "okay", "well", "the", "a",
         "it", "not", "love", "hate"]


def tiny_bert(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", "!", "?", ".", ",", *WORDS]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return folder


def tiny_speech_encoder(folder: Path, kind: str = "wav2vec2", seed: int = 0) -> Path:
    import torch
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
    )

    classes = {"wav2vec2": (Wav2Vec2Config, Wav2Vec2Model), "hubert": (HubertConfig, HubertModel),
               "wavlm": (WavLMConfig, WavLMModel)}
    config_class, model_class = classes[kind]
    torch.manual_seed(seed)
    config = config_class(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, conv_dim=(16,) * 7,
                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    model_class(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    return folder

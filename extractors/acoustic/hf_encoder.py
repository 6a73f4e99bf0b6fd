"""Acoustic features from a local Hugging Face speech encoder (``acoustic.backend: hf``).

Any wav2vec2, HuBERT, WavLM or data2vec-audio folder that ``transformers.AutoModel`` loads
(``acoustic.hf_model``; nothing is downloaded). The frame sequence comes from one hidden layer
(``hf_layer``: ``last``, a layer number, or ``mean`` of all of them), averaged in groups to
``hf_hop_ms``; the utterance vector is the mean over frames. They fill the same columns as
openSMILE's (``lld`` frames, ``functionals``), so the tensor cache and the model take either.
Audio goes through the same checks as openSMILE's (same error kinds) and is encoded in chunks
of ``hf_chunk_s`` seconds, so memory stays bounded however long the clip.
"""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from extractors.acoustic.extractor import AcousticConfig, SpeechExtractor, pool_frames
from extractors.base import weights_hash
from extractors.code_hash import code_hash
from extractors.layers import chosen_states, layer_choice
from vocabulary import portable


class HFAudioExtractor(SpeechExtractor):

    def __init__(self, config: AcousticConfig):
        import torch
        from transformers import AutoConfig, AutoModel

        folder = Path(config.hf_model) if config.hf_model else None
        if folder is None or not (folder / "config.json").is_file():
            raise ValueError(f"acoustic.hf_model {config.hf_model!r} is not a model folder "
                             "(no config.json in it); give the path of a local wav2vec2, "
                             "HuBERT, WavLM or data2vec-audio folder.")
        model_config = AutoConfig.from_pretrained(folder, local_files_only=True)
        strides = getattr(model_config, "conv_stride", None)
        if not strides:
            raise ValueError(f"{folder}: {model_config.model_type} is not a speech encoder "
                             "with a convolutional front end; use wav2vec2, HuBERT, WavLM or "
                             "data2vec-audio.")
        native = math.prod(strides)  # samples per output frame
        group = round(config.hf_hop_ms / 1000 * config.sample_rate / native)
        if group < 1 or abs(group * native / config.sample_rate * 1000 - config.hf_hop_ms) > 1e-6:
            raise ValueError(f"acoustic.hf_hop_ms = {config.hf_hop_ms} is not a multiple of "
                             f"{folder.name}'s frame hop ({native / config.sample_rate * 1000:g} "
                             "ms); pick a multiple.")
        self.config = config
        self.group = group
        self.native = native
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(config.device)
        self.model.eval()
        self.normalise = _normalises(folder)
        self.layer = layer_choice(config.hf_layer, model_config.num_hidden_layers,
                                  "acoustic.hf_layer")
        self.torch = torch
        width = model_config.hidden_size
        transformers = importlib.metadata.version("transformers")
        self.version = (f"{code_hash(type(self).__module__)}+transformers-{transformers}"
                        f"+{weights_hash(str(folder))}{portable.version_tag()}")
        self.schema = pa.schema([
            pa.field("duration_s", pa.float32()),
            pa.field("functionals", pa.list_(pa.float32(), width)),
            pa.field("lld", pa.list_(pa.list_(pa.float32(), width))),
        ])
        names = [f"{model_config.model_type}_{config.hf_layer}_{i}" for i in range(width)]
        self.metadata = {"functionals_names": [f"mean_{n}" for n in names], "lld_names": names,
                         "lld_hop_s": str(config.hf_hop_ms / 1000)}

    def features(self, audio: np.ndarray) -> dict:
        frames = self.encode(audio)
        return {"functionals": frames.mean(axis=0), "lld": pool_frames(frames, self.group)}

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Frames × hidden size of the chosen layer, one chunk of audio at a time."""
        chunk = max(self.native, int(self.config.hf_chunk_s * self.config.sample_rate)
                    // self.native * self.native)
        parts = []
        for start in range(0, audio.size, chunk):
            piece = audio[start:start + chunk]
            if piece.size < self.native * 2 and parts:
                break  # a sliver too short for the convolutions: the frames before cover it
            parts.append(self._encode_chunk(piece))
        return np.concatenate(parts)

    def _encode_chunk(self, piece: np.ndarray) -> np.ndarray:
        torch = self.torch
        if self.normalise:
            piece = (piece - piece.mean()) / np.sqrt(piece.var() + 1e-7)
        values = torch.from_numpy(np.ascontiguousarray(piece, np.float32))[None]
        with torch.inference_mode():
            out = self.model(values.to(self.config.device), output_hidden_states=True)
        return chosen_states(out.hidden_states, self.layer)[0].float().cpu().numpy()


def _normalises(folder: Path) -> bool:
    """Whether the model expects zero-mean, unit-variance input (its preprocessor says)."""
    import json

    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return True
    return bool(json.loads(path.read_text(encoding="utf-8")).get("do_normalize", True))

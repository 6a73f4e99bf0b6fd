"""A local Hugging Face speech encoder as the acoustic extractor (``acoustic.backend: hf``), on
tiny randomly initialised wav2vec2 / HuBERT / WavLM folders built here; and openSMILE's
ComParE_2016 set through the same flow and tensor cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import load_file

from extractors.acoustic import AcousticConfig
from extractors.base import Failure, UtteranceInput
from extractors.registry import make_extractor
from flows.config import ExtractConfig
from flows.extract import run_extraction
from fusion.config import TensorConfig
from fusion.tensors import build_tensors
from tests.media import make_speech, make_speech_corpus, make_wav
from tests.tiny_models import tiny_speech_encoder


@pytest.fixture(scope="module")
def wav2vec2(tmp_path_factory) -> Path:
    return tiny_speech_encoder(tmp_path_factory.mktemp("models") / "wav2vec2")


def hf(folder: Path, **settings) -> AcousticConfig:
    return AcousticConfig(backend="hf", hf_model=str(folder), **settings)


def utt(path: Path) -> UtteranceInput:
    return UtteranceInput(path.stem, "", str(path), None)


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
def test_frames_and_utterance_vector_of_each_architecture(kind, wav2vec2, tmp_path):
    folder = wav2vec2 if kind == "wav2vec2" else tiny_speech_encoder(tmp_path / kind, kind)
    extractor = make_extractor("acoustic", hf(folder))
    wav = make_speech(tmp_path / "s.wav", "Dogs are sitting by the door.")
    [row] = extractor.extract([utt(wav)])
    assert extractor.schema.names == ["duration_s", "functionals", "lld"]
    assert row["functionals"].shape == (32,) and row["lld"].shape[1] == 32
    assert abs(len(row["lld"]) - row["duration_s"] / 0.1) <= 1  # 20 ms frames → 100 ms
    np.testing.assert_allclose(row["functionals"], row["lld"].mean(axis=0), atol=0.05)
    assert np.isfinite(row["lld"]).all() and row["lld"].std() > 0
    assert extractor.metadata["lld_hop_s"] == "0.1"
    assert extractor.metadata["lld_names"][0] == f"{kind}_last_0"


def test_layer_choice_and_hop(wav2vec2, tmp_path):
    wav = make_speech(tmp_path / "s.wav", "Kids are talking by the door.")
    rows = {layer: make_extractor("acoustic", hf(wav2vec2, hf_layer=layer)).extract([utt(wav)])[0]
            for layer in ("last", "2", "0", "mean")}
    np.testing.assert_allclose(rows["last"]["lld"], rows["2"]["lld"])  # two layers: last = 2
    assert np.abs(rows["0"]["lld"] - rows["last"]["lld"]).max() > 1e-3
    assert np.abs(rows["mean"]["lld"] - rows["last"]["lld"]).max() > 1e-3
    fine = make_extractor("acoustic", hf(wav2vec2, hf_hop_ms=20)).extract([utt(wav)])[0]
    assert len(fine["lld"]) == pytest.approx(5 * len(rows["last"]["lld"]), abs=5)
    np.testing.assert_allclose(fine["lld"][:5].mean(axis=0), rows["last"]["lld"][0], atol=1e-5)


def test_long_audio_is_encoded_in_chunks(wav2vec2, tmp_path):
    seconds = 25
    rng = np.random.default_rng(0)
    wav = make_wav(tmp_path / "long.wav", 0.3 * rng.standard_normal(16000 * seconds))
    row = make_extractor("acoustic", hf(wav2vec2, hf_chunk_s=4.0)).extract([utt(wav)])[0]
    assert row["duration_s"] == pytest.approx(seconds)
    assert len(row["lld"]) == pytest.approx(seconds * 10, abs=7)  # 4 s chunks lose < 1 frame


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (AcousticConfig(backend="hf", hf_model="/nowhere"),
         "acoustic.hf_model '/nowhere' is not a model folder"),
        (AcousticConfig(backend="praat"), "acoustic.backend 'praat' is unknown"),
    ],
)
def test_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        make_extractor("acoustic", config)


def test_bad_settings_of_a_real_folder(wav2vec2):
    with pytest.raises(ValueError, match="hf_hop_ms = 30 is not a multiple of wav2vec2's frame "
                                         "hop \\(20 ms\\)"):
        make_extractor("acoustic", hf(wav2vec2, hf_hop_ms=30))
    with pytest.raises(ValueError, match="hf_layer '7' is not last, mean, a layer number or a "
                                         "range a-b of layers from 0 to 2"):
        make_extractor("acoustic", hf(wav2vec2, hf_layer="7"))


def test_through_the_flow_cached_with_error_rows_and_into_tensors(wav2vec2, tmp_path):
    manifest = make_speech_corpus(tmp_path / "corpus", 3, {"zero.mp4": b""})
    make_wav(tmp_path / "corpus" / "clips" / "quiet.wav", np.zeros(16000))
    bad = tmp_path / "corpus" / "clips" / "quiet.wav"
    config = ExtractConfig(cache_dir=str(tmp_path / "cache"))
    acoustic = hf(wav2vec2)
    first = run_extraction("acoustic", manifest, tmp_path / "out", config, acoustic)
    again = run_extraction("acoustic", manifest, tmp_path / "out", config, acoustic)
    assert (first.total, first.computed, first.failed, first.kinds) == (
        4, 4, 1, {"unreadable": 1})
    assert (again.computed, again.cached) == (0, 4)
    table = pq.read_table(tmp_path / "out" / "acoustic.parquet")
    assert table.num_rows == 3 and table.schema.metadata[b"extractor"] == b"acoustic"
    assert b'"backend": "hf"' in table.schema.metadata[b"config"]
    [failure] = make_extractor("acoustic", acoustic).extract([utt(bad)])
    assert isinstance(failure, Failure) and failure.kind == "silent"
    meta = build_tensors(manifest, tmp_path / "out", tmp_path / "tensors", TensorConfig())
    assert meta["dims"] == {"acoustic": 32}


def test_compare_2016_through_the_flow_and_into_tensors(tmp_path):
    manifest = make_speech_corpus(tmp_path / "corpus", 2)
    config = ExtractConfig(cache_dir=str(tmp_path / "cache"))
    compare = replace(AcousticConfig(), feature_set="ComParE_2016")
    summary = run_extraction("acoustic", manifest, tmp_path / "out", config, compare)
    assert (summary.computed, summary.failed) == (2, 0)
    features = tmp_path / "out" / "acoustic.parquet"
    schema = pq.read_schema(features)
    assert schema.field("functionals").type.list_size == 6373
    assert schema.field("lld").type.value_type.list_size == 65
    meta = build_tensors(manifest, tmp_path / "out", tmp_path / "tensors", TensorConfig())
    assert meta["dims"] == {"acoustic": 65}
    assert load_file(tmp_path / "tensors" / "train.safetensors")["functionals"].shape == (2, 6373)

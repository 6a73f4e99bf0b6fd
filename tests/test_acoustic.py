from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from extractors.acoustic import AcousticConfig, AcousticExtractor
from extractors.base import Failure, UtteranceInput
from tests.media import egemaps, make_clip, make_speech, make_wav


@pytest.fixture(scope="module")
def extractor() -> AcousticExtractor:
    return AcousticExtractor(egemaps())


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def audio(path: Path, start=None, end=None, video=False) -> UtteranceInput:
    return UtteranceInput(path.stem, "", str(path), str(path) if video else None, start, end)


def test_speech_gives_functionals_and_lld_sequence(tmp_path, extractor):
    wav = make_speech(tmp_path / "s.wav", "Dogs are sitting by the door, and I love them.")
    (row,) = extractor.extract([audio(wav)])
    assert row["functionals"].shape == (88,)
    assert np.isfinite(row["functionals"]).all()
    assert row["lld"].shape[1] == 25
    assert abs(len(row["lld"]) - row["duration_s"] / 0.01) < 5  # 10 ms hop
    names = extractor.metadata["lld_names"]
    assert names[0] == "Loudness_sma3" and len(names) == 25
    assert extractor.metadata["functionals_names"][0].startswith("F0semitone")
    coarse = AcousticExtractor(egemaps(lld_hop_ms=40)).extract([audio(wav)])[0]
    assert len(coarse["lld"]) == -(-len(row["lld"]) // 4)
    np.testing.assert_allclose(coarse["lld"][0], row["lld"][:4].mean(axis=0), rtol=1e-5)
    functionals_only = AcousticExtractor(egemaps(levels=("functionals",)))
    assert functionals_only.schema.names == ["duration_s", "functionals"]


def test_audio_track_of_video_segment_and_cap(tmp_path, extractor):
    clip = make_clip(tmp_path / "c.mp4", seconds=3)
    whole, part = extractor.extract([audio(clip, video=True),
                                     audio(clip, start=1.0, end=2.5, video=True)])
    assert whole["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert part["duration_s"] == pytest.approx(1.5, abs=0.05)
    capped = AcousticExtractor(egemaps(max_duration_s=1.0)).extract([audio(clip)])[0]
    assert capped["duration_s"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    ("make", "kind", "message"),
    [
        (lambda p: write(p.with_suffix(".mp4"), b""), "unreadable", "cannot decode audio"),
        (lambda p: write(p.with_suffix(".mp4"), b"not a video"), "unreadable",
         "cannot decode audio"),
        (lambda p: make_clip(p.with_suffix(".mp4"), audio=False), "no_audio_stream",
         "has no audio stream"),
        (lambda p: make_wav(p, np.zeros(16000)), "silent", "the audio is silent"),
        (lambda p: make_wav(p, 0.5 * np.sin(np.arange(1600) / 5)), "too_short",
         "0.100 s of audio is shorter than acoustic.min_duration_s"),
    ],
)
def test_bad_audio_becomes_a_failure(tmp_path, extractor, make, kind, message):
    path = make(tmp_path / "bad.wav")
    (result,) = extractor.extract([audio(path)])
    assert isinstance(result, Failure)
    assert result.kind == kind
    assert message in result.message and str(path) in result.message


def test_wav_named_mp4_is_read_by_content(tmp_path, extractor):
    wav = make_speech(tmp_path / "s.wav", "Hello there.")
    fake = tmp_path / "really_a_wav.mp4"
    fake.write_bytes(wav.read_bytes())
    assert extractor.extract([audio(fake)])[0]["functionals"].shape == (88,)


def test_digest_follows_content_not_name(tmp_path, extractor):
    a = make_wav(tmp_path / "a.wav", np.sin(np.arange(16000) / 7))
    b = tmp_path / "b.wav"
    b.write_bytes(a.read_bytes())
    assert extractor.digest(audio(a)) == extractor.digest(audio(b))
    assert extractor.digest(audio(a, 0.0, 0.5, video=True)) != extractor.digest(audio(a))
    assert extractor.digest(audio(tmp_path / "gone.wav")).kind == "missing_file"
    assert extractor.digest(UtteranceInput("x", "", None, None)).kind == "no_media"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (egemaps(lld_hop_ms=15), "lld_hop_ms must be a multiple of 10"),
        (egemaps(levels=("frames",)), "levels must be a non-empty subset"),
        (AcousticConfig(feature_set="GeMAPSv99"), "feature_set 'GeMAPSv99' is unknown"),
    ],
)
def test_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        AcousticExtractor(config)

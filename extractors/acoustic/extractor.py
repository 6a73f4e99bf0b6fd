"""Acoustic features with openSMILE: per-utterance functionals and low-level descriptors over time.

Default eGeMAPSv02: 88 functionals and 25 LLDs at a 10 ms hop. ``lld_hop_ms`` coarsens the LLD
sequence by averaging whole groups of 10 ms frames (e.g. 20 ms averages pairs). Audio comes
from any file FFmpeg decodes, resampled to ``sample_rate`` mono, capped at ``max_duration_s``.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

from extractors.audio import decode_audio
from extractors.base import (
    Failure,
    MediaError,
    Result,
    UtteranceInput,
    file_digest,
    file_size,
)
from extractors.code_hash import code_hash
from extractors.configs import LEVELS, AcousticConfig

NATIVE_HOP_MS = 10


class SpeechExtractor:
    """What every acoustic backend shares: the input digest, the cost, the audio checks.
    A backend sets ``config`` and implements ``features(audio)``."""

    modality = "acoustic"
    config: AcousticConfig

    def digest(self, utt: UtteranceInput) -> str | Failure:
        if not utt.audio_path:
            return Failure("no_media", "the manifest has no audio for this utterance.")
        return file_digest(utt.audio_path, extra=repr(utt.audio_segment))

    def cost(self, utt: UtteranceInput) -> float:
        return file_size(utt.audio_path)

    def extract(self, utts: list[UtteranceInput]) -> list[Result]:
        return [self._one(utt) for utt in utts]

    def _one(self, utt: UtteranceInput) -> Result:
        audio = load_speech(utt, self.config)
        if isinstance(audio, Failure):
            return audio
        return {"duration_s": audio.size / self.config.sample_rate, **self.features(audio)}

    def features(self, audio: np.ndarray) -> dict:
        raise NotImplementedError


class AcousticExtractor(SpeechExtractor):
    """openSMILE."""

    def __init__(self, config: AcousticConfig):
        import opensmile

        if config.lld_hop_ms % NATIVE_HOP_MS:
            raise ValueError(f"acoustic.lld_hop_ms must be a multiple of {NATIVE_HOP_MS}.")
        unknown = set(config.levels) - set(LEVELS)
        if unknown or not config.levels:
            raise ValueError(f"acoustic.levels must be a non-empty subset of {list(LEVELS)}.")
        try:
            self.feature_set = opensmile.FeatureSet[config.feature_set]
        except KeyError:
            names = ", ".join(f.name for f in opensmile.FeatureSet)
            raise ValueError(f"acoustic.feature_set {config.feature_set!r} is unknown; "
                             f"use one of {names}.") from None
        self.config = config
        self.version = f"{code_hash(type(self).__module__)}+opensmile-{opensmile.__version__}"
        self._local = threading.local()  # openSMILE objects are not shared between threads
        self.names = {level: self._smile(level).feature_names for level in config.levels}
        fields = [pa.field("duration_s", pa.float32())]
        if "functionals" in config.levels:
            fields.append(pa.field("functionals",
                                   pa.list_(pa.float32(), len(self.names["functionals"]))))
        if "lld" in config.levels:
            fields.append(pa.field("lld", pa.list_(pa.list_(pa.float32(),
                                                            len(self.names["lld"])))))
        self.schema = pa.schema(fields)
        self.metadata = {f"{level}_names": names for level, names in self.names.items()}
        self.metadata["lld_hop_s"] = str(config.lld_hop_ms / 1000)

    def _smile(self, level: str):
        import opensmile

        cache = self._local.__dict__
        if level not in cache:
            feature_level = (opensmile.FeatureLevel.Functionals if level == "functionals"
                             else opensmile.FeatureLevel.LowLevelDescriptors)
            cache[level] = opensmile.Smile(feature_set=self.feature_set,
                                           feature_level=feature_level)
        return cache[level]

    def features(self, audio: np.ndarray) -> dict:
        c = self.config
        row: dict = {}
        if "functionals" in c.levels:
            values = self._smile("functionals").process_signal(audio, c.sample_rate).to_numpy()
            row["functionals"] = values[0].astype(np.float32)
        if "lld" in c.levels:
            lld = self._smile("lld").process_signal(audio, c.sample_rate).to_numpy(np.float32)
            row["lld"] = pool_frames(lld, c.lld_hop_ms // NATIVE_HOP_MS)
        return row


def load_speech(utt: UtteranceInput, c: AcousticConfig) -> np.ndarray | Failure:
    """The utterance's audio at ``c.sample_rate``, or why it cannot be used (every backend
    applies the same checks, so the error kinds are the same)."""
    try:
        start, end = utt.audio_segment
        audio = decode_audio(utt.audio_path, c.sample_rate, start, end, c.max_duration_s)
    except MediaError as exc:
        return Failure(exc.kind, str(exc))
    duration = audio.size / c.sample_rate
    if audio.size == 0:
        return Failure("empty", f"{utt.audio_path}: the audio has no samples.")
    if duration < c.min_duration_s:
        return Failure("too_short", f"{utt.audio_path}: {duration:.3f} s of audio is shorter "
                       f"than acoustic.min_duration_s = {c.min_duration_s} s.")
    level_db = loudest_frame_dbfs(audio, c.sample_rate)
    if level_db < c.silence_dbfs:
        return Failure("silent", f"{utt.audio_path}: the audio is silent (its loudest 50 ms "
                       f"are {level_db:.0f} dBFS, below acoustic.silence_dbfs = "
                       f"{c.silence_dbfs:.0f}).")
    return audio


def loudest_frame_dbfs(audio: np.ndarray, sample_rate: int, frame_s: float = 0.05) -> float:
    """The RMS level of the loudest 50 ms frame: quiet speech in a long pause is not silence."""
    size = max(1, int(frame_s * sample_rate))
    frames = audio[: len(audio) // size * size].reshape(-1, size) if len(audio) >= size else (
        audio.reshape(1, -1))
    rms = float(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)).max())
    return 20 * np.log10(max(rms, 1e-10))


def pool_frames(frames: np.ndarray, group: int) -> np.ndarray:
    """Average consecutive groups of ``group`` frames (a trailing partial group is kept)."""
    if group == 1:
        return frames
    n = len(frames)
    pad = (-n) % group
    padded = np.concatenate([frames, np.full((pad, frames.shape[1]), np.nan, frames.dtype)])
    return np.nanmean(padded.reshape(-1, group, frames.shape[1]), axis=1)

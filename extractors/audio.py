"""Decode the audio of any file FFmpeg reads (wav, flac, mp4, avi) to mono float32 at one rate."""

from __future__ import annotations

import av
import numpy as np

from extractors.base import MediaError


def decode_audio(
    path: str,
    sample_rate: int = 16000,
    start_s: float | None = None,
    end_s: float | None = None,
    max_s: float | None = None,
) -> np.ndarray:
    """Return the samples of ``path`` (optionally the ``start_s``..``end_s`` segment).

    Decoding stops after ``max_s`` seconds, so a wrongly cut, very long clip costs bounded time
    and memory. Raises :class:`MediaError` with kind ``unreadable`` or ``no_audio_stream``.
    """
    start = start_s or 0.0
    stop = min(x for x in (end_s, start + max_s if max_s else None, float("inf")) if x is not None)
    limit = int(round((stop - start) * sample_rate)) if stop != float("inf") else None
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise MediaError("no_audio_stream", f"{path}: has no audio stream; "
                                 "give the utterance an audio file or drop it from the manifest.")
            stream = container.streams.audio[0]
            if start:
                container.seek(int(start / stream.time_base), stream=stream)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks, have = [], 0
            for frame in container.decode(stream):
                early = start - frame.time if start and frame.time is not None else 0.0
                skip = int(early * sample_rate) if early > 0 else 0
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)[skip:]
                    skip = 0
                    chunks.append(samples)
                    have += samples.size
                if limit is not None and have >= limit:
                    break
            else:
                chunks += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    except av.error.FFmpegError as exc:
        raise MediaError("unreadable", f"{path}: cannot decode audio ({exc.strerror or exc}); "
                         "check the file (re-export or re-download it).") from None
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio[:limit] if limit is not None else audio

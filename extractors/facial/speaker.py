"""Whose face is the speaker's: the track whose mouth moves with the voice, else the most prominent.

``active``: the loudness of the utterance's audio (RMS in dB over 1.5 frame intervals around
each sampled frame) is correlated with each track's mouth movement: how much its mouth opening
(the mean of AU25 lips part and AU26 jaw drop) changes from one read frame to the next, set
against the louder of the two frames. A face that talks moves its mouth while there is voice;
a listener's mouth is still, or moves out of time with it. The score is that correlation
times the share of the clip the track lasts, so a face seen for a moment cannot win by
chance. When the audio is missing or flat (less than ``MIN_LOUDNESS_RANGE_DB`` between its
quiet and loud frames), or no track's mouth follows it at all, the choice falls back to
``largest``: the track with the greatest product of size (the square root of its mean box
area), centrality and lifetime.
"""

from __future__ import annotations

import math

import numpy as np

from extractors.facial.aus import AUS, MOUTH_AUS
from extractors.facial.tracks import Track

MIN_LOUDNESS_RANGE_DB = 6.0  # flatter than this, the audio says nothing about who speaks
SILENCE_DB = -80.0  # the floor of the loudness envelope
LOUDNESS_WINDOW = 1.5  # frame intervals of audio around each frame (11 of 12 scenes vs 10 at 1)
_MOUTH = [AUS.index(au) for au in MOUTH_AUS]


def loudness_envelope(audio: np.ndarray, rate: int, times: np.ndarray,
                      window_s: float) -> np.ndarray:
    """RMS level in dB of the ``window_s`` seconds of ``audio`` centred on each of ``times``."""
    half = max(1, int(window_s * rate / 2))
    levels = []
    for t in times:
        centre = int(round(t * rate))
        segment = audio[max(0, centre - half):centre + half]
        rms = float(np.sqrt(np.mean(np.square(segment)))) if segment.size else 0.0
        levels.append(20 * math.log10(rms) if rms > 0 else SILENCE_DB)
    return np.maximum(np.array(levels, np.float64), SILENCE_DB)


def mouth_follows_voice(track: Track, envelope: np.ndarray) -> float:
    """Pearson correlation of the track's mouth movement between read frames with the
    loudness (the louder of the two frames)."""
    frames = [i for i, f in sorted(track.faces.items()) if f.aus is not None]
    if len(frames) < 4:
        return 0.0
    opening = np.array([float(track.faces[i].aus[_MOUTH].mean()) for i in frames])
    movement = np.abs(np.diff(opening))
    level = np.maximum(envelope[frames][1:], envelope[frames][:-1])
    if movement.std() < 1e-6 or level.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(movement, level)[0, 1])


def prominence(track: Track, n_frames: int) -> float:
    """Size × centrality × lifetime of a track (each 0..1)."""
    faces = list(track.faces.values())
    size = math.sqrt(np.mean([f.area for f in faces]))
    off_centre = np.mean([math.hypot(f.centre[0] - 0.5, f.centre[1] - 0.5) for f in faces])
    centrality = 1.0 - off_centre / math.hypot(0.5, 0.5)
    return size * centrality * len(faces) / n_frames


def choose_speaker(tracks: list[Track], n_frames: int, envelope: np.ndarray | None,
                   mode: str) -> tuple[Track, str]:
    """The speaker's track and how it was chosen: ``only``, ``active`` or ``largest``."""
    readable = [t for t in tracks if any(f.aus is not None for f in t.faces.values())]
    candidates = readable or tracks
    if len(candidates) == 1:
        return candidates[0], "only"
    if (mode == "active" and envelope is not None
            and np.ptp(envelope) >= MIN_LOUDNESS_RANGE_DB):
        scores = [mouth_follows_voice(t, envelope) * len(t.faces) / n_frames
                  for t in candidates]
        best = int(np.argmax(scores))
        if scores[best] > 0:
            return candidates[best], "active"
    return max(candidates, key=lambda t: prominence(t, n_frames)), "largest"

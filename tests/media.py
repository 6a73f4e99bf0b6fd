"""Small media files generated with ffmpeg and espeak-ng for tests."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from extractors.configs import AcousticConfig


def make_clip(path: Path, seconds: float = 1.0, audio: bool = True, video: bool = True) -> Path:
    """A small mp4 with a test pattern and/or a sine tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs, maps = [], []
    if video:
        inputs += ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=5"]
        maps += ["-map", f"{len(maps) // 2}:v"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=220:sample_rate=16000"]
        maps += ["-map", f"{len(maps) // 2}:a"]
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-v", "error", *inputs, *maps, "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(path)],
        check=True,
    )
    return path


def make_speech(path: Path, text: str) -> Path:
    """Real synthesized speech (espeak-ng) as a wav file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


def make_wav(path: Path, samples, rate: int = 16000) -> Path:
    """A mono 16-bit wav from float samples in [-1, 1]."""
    import wave

    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


SENTENCES = [
    "I can't believe you did that!", "The meeting starts at nine tomorrow.",
    "This is the best day of my life!", "Please leave me alone right now.",
    "Oh no, the train has already gone.", "We should buy some bread and milk.",
    "Wow, what a wonderful surprise!", "I am so tired of waiting for you.",
]


def make_speech_corpus(root: Path, n: int, bad: dict[str, bytes] | None = None) -> Path:
    """A csv-kind corpus of ``n`` espeak-ng utterances plus ``bad`` files (name → bytes).

    Returns the manifest path (``root/manifest.parquet``).
    """
    from extractors.corpora.csv_corpus import prepare_csv
    from vocabulary.atomic import write_parquet

    rows = [["utterance_id", "text", "label", "split", "audio_path"]]
    for i in range(n):
        text = f"{SENTENCES[i % len(SENTENCES)]} Number {i}."
        make_speech(root / "clips" / f"u{i:03d}.wav", text)
        rows.append([f"u{i:03d}", text, "ab"[i % 2], "train", f"clips/u{i:03d}.wav"])
    for name, content in (bad or {}).items():
        (root / "clips" / name).write_bytes(content)
        rows.append([Path(name).stem, "bad file", "a", "train", f"clips/{name}"])
    with open(root / "corpus.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    table, _ = prepare_csv(root / "corpus.csv", name="speech")
    write_parquet(table, root / "manifest.parquet")
    return root / "manifest.parquet"


def egemaps(**settings) -> AcousticConfig:
    """The acoustic settings with eGeMAPSv02 (88 functionals, 25 LLDs), the small openSMILE
    set the extractor tests check by name; the pipeline's default is ComParE_2016."""
    return AcousticConfig(feature_set="eGeMAPSv02", **settings)

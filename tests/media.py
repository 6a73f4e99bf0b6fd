"""Small media files generated with ffmpeg and espeak-ng for tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


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

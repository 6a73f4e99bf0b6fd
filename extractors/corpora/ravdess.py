"""RAVDESS: Ryerson Audio-Visual Database of Emotional Speech and Song (Livingstone & Russo, 2018).

Labels live in file names ``MM-VC-EE-II-SS-RR-AA.ext``: modality (01 audio-video, 02 video-only,
03 audio-only), vocal channel (01 speech, 02 song), emotion (01..08, see ``EMOTIONS``),
intensity, statement (01/02, see ``STATEMENTS``), repetition, actor (odd = male). Any folder
layout works: files are found recursively (.wav, .flac, .mp4). Video-only clips (02) still carry
an audio track in the public release, so their audio path is the clip itself.

Split by actor, never by clip: ``dev_actors`` and ``test_actors`` choose; the rest is train.
Each clip is its own "dialogue" of one turn: the clips are read sentences, not a conversation,
so ``model.context: auto`` trains without dialogue context.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from extractors.corpora.files import corpus_files
from extractors.corpora.manifest import CorpusError, Report, Utterance, build_manifest

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
            "06": "fearful", "07": "disgust", "08": "surprised"}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
FILE_NAME = re.compile(r"^(0[123])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)$")
EXTENSIONS = {".wav", ".flac", ".mp4"}


def prepare_ravdess(
    corpus_dir: Path,
    name: str = "ravdess",
    dev_actors: tuple[int, ...] = (11, 12),
    test_actors: tuple[int, ...] = (23, 24),
) -> tuple[pa.Table, Report]:
    """Find RAVDESS files under ``corpus_dir`` and return a manifest table and a report."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: folder not found; point to the RAVDESS files.")
    report = Report()
    by_actor: dict[int, list[Path]] = defaultdict(list)
    for path in corpus_files(corpus_dir):
        if path.suffix.lower() not in EXTENSIONS:
            continue
        match = FILE_NAME.match(path.stem)
        if not match:
            report.add("unrecognised_name", path.name)
            continue
        by_actor[int(match.group(7))].append(path)
    utterances = []
    for actor, paths in sorted(by_actor.items()):
        split = "dev" if actor in dev_actors else "test" if actor in test_actors else "train"
        for path in paths:
            modality, _, emotion, _, statement, _, _ = FILE_NAME.match(path.stem).groups()
            rel = path.relative_to(corpus_dir).as_posix()
            utterances.append(
                Utterance(
                    utterance_id=f"{name}/{path.stem}",
                    corpus=name,
                    split=split,
                    dialogue_id=f"{name}/{path.stem}",
                    turn=0,
                    speaker=f"actor{actor:02d}",
                    text=STATEMENTS[statement],
                    label=EMOTIONS[emotion],
                    audio_path=rel,
                    video_path=rel if modality in ("01", "02") else None,
                    origin=str(path),
                )
            )
    return build_manifest(
        utterances, corpus_root=corpus_dir, labels=tuple(EMOTIONS.values()), report=report,
        source=str(corpus_dir),
    ), report

"""IEMOCAP: Interactive Emotional Dyadic Motion Capture database (Busso et al., 2008).

Layout (IEMOCAP_full_release): ``Session{1..5}/dialog/EmoEvaluation/<dialog>.txt`` (one line per
turn: ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]``),
``dialog/transcriptions/<dialog>.txt`` (``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.``),
``sentences/wav/<dialog>/<utterance>.wav`` (one file per utterance) and
``dialog/avi/DivX/<dialog>.avi`` (one video per dialogue: ``start_s``/``end_s`` cut the
utterance out of it; the sentence wav is already cut).

Label sets: ``6`` keeps hap, sad, neu, ang, exc, fru; ``4`` merges exc into hap and drops fru.
Other labels (xxx, oth, sur, fea, dis) are dropped and counted. Default split: Sessions 1-4
train except the last ``dev_fraction`` of Session 4's dialogues (by name), which are dev;
Session 5 is test. Speaker is session + gender of the utterance (``Ses01_F``); a session's two
actors share all of its dialogues (:func:`session`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pyarrow as pa

from extractors.corpora.manifest import CorpusError, Report, Utterance, build_manifest

NAMES = {"hap": "happy", "sad": "sad", "neu": "neutral", "ang": "angry", "exc": "excited",
         "fru": "frustrated"}
LABEL_SETS = {
    "6": {code: NAMES[code] for code in ("hap", "sad", "neu", "ang", "exc", "fru")},
    "4": {"hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral", "ang": "angry"},
}
EVAL_LINE = re.compile(r"^\[(\d+\.?\d*)\s*-\s*(\d+\.?\d*)\]\t(\S+)\t(\S+)\t")
TRANSCRIPT_LINE = re.compile(r"^(Ses\d\d[FM]_\S+_[FM]\d+)\s+\[[^\]]*\]:\s?(.*)$")


def prepare_iemocap(
    corpus_dir: Path, name: str = "iemocap", label_set: str = "6", dev_fraction: float = 0.2
) -> tuple[pa.Table, Report]:
    """Read an IEMOCAP_full_release tree into a manifest table and a report."""
    corpus_dir = Path(corpus_dir)
    if label_set not in LABEL_SETS:
        raise CorpusError(f"IEMOCAP label set {label_set!r} is unknown; use '6' or '4'.")
    mapping = LABEL_SETS[label_set]
    sessions = sorted(p for p in corpus_dir.glob("Session[1-5]") if p.is_dir())
    if not sessions:
        raise CorpusError(
            f"{corpus_dir}: no Session1..Session5 folders; point to IEMOCAP_full_release."
        )
    report = Report()
    utterances: list[Utterance] = []
    for session in sessions:
        dialogs = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
        dev = _dev_dialogs(session, dialogs, dev_fraction)
        for eval_file in dialogs:
            split = "test" if session.name == "Session5" else "dev" if eval_file in dev else "train"
            utterances += _read_dialog(corpus_dir, session, eval_file, split, name, mapping, report)
    labels = tuple(dict.fromkeys(mapping.values()))
    table = build_manifest(
        utterances, corpus_root=corpus_dir, labels=labels, report=report, source=str(corpus_dir)
    )
    return table, report


def session(dialogue_id: str) -> str:
    """The session of a manifest's IEMOCAP dialogue (``iemocap/Ses01F_impro01`` → ``Ses01``)."""
    return dialogue_id.rsplit("/", 1)[-1][:5]


def _dev_dialogs(session: Path, dialogs: list[Path], dev_fraction: float) -> set[Path]:
    if session.name != "Session4" or not dialogs:
        return set()
    return set(dialogs[len(dialogs) - math.ceil(dev_fraction * len(dialogs)):])


def _read_dialog(
    root: Path, session: Path, eval_file: Path, split: str, name: str,
    mapping: dict[str, str], report: Report,
) -> list[Utterance]:
    dialog = eval_file.stem
    texts = _transcripts(session / "dialog" / "transcriptions" / f"{dialog}.txt", report)
    video = session / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
    if not video.is_file():
        report.add("missing_video", video.relative_to(root).as_posix())
    turns = []
    for line_no, line in enumerate(eval_file.read_text(encoding="utf-8").splitlines(), 1):
        match = EVAL_LINE.match(line)
        if not match:
            continue
        start, end, utt_id, code = match.groups()
        if code not in mapping:
            report.add(f"dropped_label_{code}", utt_id)
            continue
        turns.append((float(start), float(end), utt_id, mapping[code], f"{eval_file}:{line_no}"))
    utterances = []
    for turn, (start, end, utt_id, label, origin) in enumerate(sorted(turns)):
        wav = session / "sentences" / "wav" / dialog / f"{utt_id}.wav"
        if not wav.is_file():
            report.add("missing_audio", wav.relative_to(root).as_posix())
        if utt_id not in texts:
            report.add("missing_transcript", utt_id)
        utterances.append(
            Utterance(
                utterance_id=f"{name}/{utt_id}",
                corpus=name,
                split=split,
                dialogue_id=f"{name}/{dialog}",
                turn=turn,
                speaker=f"{utt_id[:5]}_{utt_id.rsplit('_', 1)[1][0]}",
                text=texts.get(utt_id, ""),
                label=label,
                audio_path=wav.relative_to(root).as_posix() if wav.is_file() else None,
                video_path=video.relative_to(root).as_posix() if video.is_file() else None,
                start_s=start,
                end_s=end,
                origin=origin,
            )
        )
    return utterances


def _transcripts(path: Path, report: Report) -> dict[str, str]:
    if not path.is_file():
        report.add("missing_transcription_file", path.name)
        return {}
    texts = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = TRANSCRIPT_LINE.match(line.strip())
        if match:
            texts[match.group(1)] = match.group(2).strip()
    return texts

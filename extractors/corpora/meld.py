"""MELD: Multimodal EmotionLines Dataset (Poria et al., 2019), ~13k utterances from *Friends*.

Layout (MELD.Raw): ``{train,dev,test}_sent_emo.csv`` at the root, clips under
``train/train_splits/``, ``dev/dev_splits_complete/`` and ``test/output_repeated_splits_test/``
named ``dia{Dialogue_ID}_utt{Utterance_ID}.mp4``; each clip carries its own audio track.

Quirks of the real release, handled here:
- rows whose clip is missing (e.g. train ``dia125_utt3``): kept, media paths null, counted;
- a corrupt clip (train ``dia110_utt7``): kept with its path, counted; extraction records the error;
- clips on disk with no CSV row (test has repeated splits): counted, not added;
- time stamps are SRT style (``00:16:16,059``), episode time, kept as ``source_start_s``/``_end_s``;
- text uses curly quotes and accents (UTF-8); other encodings need ``--encoding``.
Only the CSVs are needed: without clip folders the manifest is text only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from extractors.corpora.csvfile import read_csv_rows
from extractors.corpora.manifest import CorpusError, Report, Utterance, build_manifest
from extractors.corpora.media import media_problems

LABELS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
CSV_NAMES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
CLIP_DIRS = {
    "train": "train/train_splits",
    "dev": "dev/dev_splits_complete",
    "test": "test/output_repeated_splits_test",
}
REQUIRED = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
CLIP_NAME = re.compile(r"^dia(\d+)_utt(\d+)\.mp4$")
TIMESTAMP = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})$")


def parse_timestamp(value: str) -> float | None:
    """``'00:16:16,059'`` → 976.059 seconds; None when the value is not such a time stamp."""
    match = TIMESTAMP.match(value.strip())
    if not match:
        return None
    h, m, s, ms = match.groups()
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def prepare_meld(
    corpus_dir: Path, name: str = "meld", encoding: str = "utf-8"
) -> tuple[pa.Table, Report]:
    """Read MELD's CSVs (and clips where present) into a manifest table and a report."""
    corpus_dir = Path(corpus_dir)
    report = Report()
    utterances: list[Utterance] = []
    found = [s for s, f in CSV_NAMES.items() if (corpus_dir / f).is_file()]
    if not found:
        raise CorpusError(
            f"{corpus_dir}: none of {', '.join(CSV_NAMES.values())} found; "
            "point to the folder that holds the MELD CSV files."
        )
    for split in found:
        utterances += _read_split(corpus_dir, split, name, encoding, report)
    return build_manifest(
        utterances, corpus_root=corpus_dir, labels=LABELS, report=report, source=str(corpus_dir)
    ), report


def _read_split(
    root: Path, split: str, name: str, encoding: str, report: Report
) -> list[Utterance]:
    csv_path = root / CSV_NAMES[split]
    clip_dir = root / CLIP_DIRS[split]
    has_clips = clip_dir.is_dir()
    if not has_clips:
        report.add("no_clip_folder", CLIP_DIRS[split])
    utterances = []
    for line, row in read_csv_rows(csv_path, REQUIRED, encoding):
        origin = f"{csv_path}:{line}"
        try:
            dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
        except ValueError:
            raise CorpusError(
                f"{origin}: Dialogue_ID/Utterance_ID must be integers, got "
                f"{row['Dialogue_ID']!r}/{row['Utterance_ID']!r}; fix the row."
            ) from None
        start, end = (parse_timestamp(row.get(c, "")) for c in ("StartTime", "EndTime"))
        if "StartTime" in row and (start is None or end is None):
            report.add("bad_timestamp", f"dia{dia}_utt{utt}")
        clip = f"{CLIP_DIRS[split]}/dia{dia}_utt{utt}.mp4"
        if has_clips and not (root / clip).is_file():
            report.add("missing_clip", clip)
        media = clip if has_clips and (root / clip).is_file() else None
        utterances.append(
            Utterance(
                utterance_id=f"{name}/{split}/dia{dia}_utt{utt}",
                corpus=name,
                split=split,
                dialogue_id=f"{name}/{split}/dia{dia}",
                turn=utt,
                speaker=row["Speaker"],
                text=row["Utterance"],
                label=row["Emotion"].lower(),
                audio_path=media,
                video_path=media,
                source_start_s=start,
                source_end_s=end,
                origin=origin,
            )
        )
    if has_clips:
        _check_clips(root, clip_dir, utterances, report)
    return utterances


def _check_clips(root: Path, clip_dir: Path, utterances: list[Utterance], report: Report) -> None:
    listed = {u.video_path for u in utterances if u.video_path}
    for path in sorted(clip_dir.glob("*.mp4")):
        rel = path.relative_to(root).as_posix()
        if CLIP_NAME.match(path.name) and rel not in listed:
            report.add("unlisted_clip", rel)
    with_clip = [u for u in utterances if u.video_path]
    problems = media_problems([root / u.video_path for u in with_clip])
    for utt, problem in zip(with_clip, problems, strict=True):
        if problem:
            report.add("corrupt_clip", f"{utt.video_path} ({problem})")

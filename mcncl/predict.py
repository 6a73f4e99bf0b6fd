"""``mcncl predict``: new clips through the three extractors and the trained model.

The clip goes through the same code as a corpus: the extractors, a one-row tensor cache
(standardised with the model's own training statistics and built with its tensor settings),
then the model. A modality that cannot be extracted (no face, no speech, no transcript) is
masked, as in training, and named in the result. A folder holds one speaker's clips: with
``tensors.speaker_norm: speaker`` they are standardised with their own statistics.

The features are made as the model's were: its checkpoint records each extractor's settings
(its provenance), and those replace ``params.yaml``'s where they differ, with a note saying
so. What cannot be made that way (a model folder gone, extractor code changed since) is an
error; a checkpoint from before provenance was recorded gets a note that it cannot be checked.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import pyarrow as pa
import torch

from extractors.base import MODEL_FIELDS, Failure, UtteranceInput
from extractors.configs import PACKAGED_MODEL
from extractors.corpora.csvfile import read_csv_rows
from extractors.corpora.manifest import CorpusError
from extractors.registry import make_extractor
from flows.tables import write_stage_tables
from fusion.checkpoint import MODEL, describe_diff, provenance_diff
from fusion.config import TensorConfig
from fusion.data import load_split
from fusion.evaluate import load_model
from fusion.tensors import build_tensors, feature_settings
from fusion.train import predict
from vocabulary.atomic import write_parquet


class PredictError(ValueError):
    """The clip or its transcript cannot be used."""


def transcript_for(clip: Path, text: str | None) -> str:
    """The transcript given, else the sidecar ``<clip>.txt``, else empty (text masked)."""
    if text is not None:
        return text
    sidecar = clip.with_suffix(".txt")
    return sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""


MEDIA = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".wav", ".flac", ".mp3", ".m4a", ".ogg"}


def clips_in(folder: Path) -> list[Path]:
    """The audio and video files directly in ``folder``, by name."""
    clips = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in MEDIA)
    if not clips:
        raise PredictError(f"{folder}: no audio or video files in it; give a clip, or a folder "
                           f"of one speaker's clips ({', '.join(sorted(MEDIA))}).")
    return clips


def predict_clip(clip: Path, text: str | None, model_dir: Path, extractor_configs: dict,
                 tensor_config: TensorConfig) -> dict:
    """Emotion probabilities for ``clip``; ``extractor_configs`` maps stage → its config (the
    text one pointed at the corpus's fine-tuned encoder when there is one)."""
    [result] = predict_clips([clip], [text], model_dir, extractor_configs, tensor_config)
    if "error" in result:
        raise PredictError(result["error"])
    return result


def predict_clips(clips: list[Path], texts: list[str | None], model_dir: Path,
                  extractor_configs: dict, tensor_config: TensorConfig) -> list[dict]:
    """:func:`predict_clip` for several clips of **one speaker** (a folder of them): with
    ``tensors.speaker_norm: speaker`` their acoustic and facial features are standardised
    with their own statistics when there are at least ``speaker_min_utterances`` of them, as
    the model saw its training speakers. A clip with nothing usable gets an ``error``."""
    clips = [Path(c).absolute() for c in clips]  # as given (a symlink stays its own name)
    for clip in clips:
        if not clip.is_file():
            raise PredictError(f"{clip}: not found; give the path of a video or audio clip.")
    utts = [UtteranceInput(f"predict/{i}", transcript_for(clip, text), str(clip), str(clip),
                           speaker="predict" if len(clips) > 1 else "")
            for i, (clip, text) in enumerate(zip(clips, texts, strict=True))]
    return _predict([str(c) for c in clips], utts, model_dir, extractor_configs,
                    tensor_config, conversation=False)


CONVERSATION_COLUMNS = ("text", "speaker", "audio_path", "video_path")


def predict_conversation(csv_path: Path, model_dir: Path, extractor_configs: dict,
                         tensor_config: TensorConfig) -> list[dict]:
    """Every turn of one conversation, each scored with its dialogue's context as the model
    reads it (``past``: the turns before it; ``past_future``: the whole conversation given).

    ``csv_path`` lists the turns in order: ``text`` and, where known, ``speaker``,
    ``audio_path``, ``video_path`` (relative to the CSV's folder, or absolute; an empty
    ``audio_path`` is the video's own sound track; nothing: that modality is masked). To score
    a clip with its earlier turns, make it the last row."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise PredictError(f"{csv_path}: not found; give the CSV of a conversation "
                           f"({', '.join(CONVERSATION_COLUMNS)}; one row per turn, in order).")
    try:
        rows = [row for _, row in read_csv_rows(csv_path, ("text",))]
    except CorpusError as exc:
        raise PredictError(str(exc)) from None
    if not rows:
        raise PredictError(f"{csv_path}: no turns in it; give one row per turn under the "
                           f"header ({', '.join(CONVERSATION_COLUMNS)}).")
    context = extractor_configs["text"].context
    utts, names = [], []
    for i, row in enumerate(rows):
        media = {k: _media(csv_path, row.get(k, "")) for k in ("audio_path", "video_path")}
        media["audio_path"] = media["audio_path"] or media["video_path"]  # its sound track
        earlier = [(r.get("speaker", ""), r["text"]) for r in rows[max(0, i - context):i]]
        utts.append(UtteranceInput(f"predict/{i}", row["text"], media["audio_path"],
                                   media["video_path"], speaker=row.get("speaker", ""),
                                   previous=tuple(reversed(earlier))))
        names.append(media["video_path"] or media["audio_path"] or f"{csv_path}:turn {i}")
    return _predict(names, utts, model_dir, extractor_configs, tensor_config,
                    conversation=True)


def _media(csv_path: Path, value: str) -> str | None:
    """A media path of a conversation CSV, absolute; None when empty."""
    if not value:
        return None
    path = Path(value) if Path(value).is_absolute() else csv_path.parent / value
    if not path.is_file():
        raise PredictError(f"{csv_path}: {value} not found; fix the path (relative to the "
                           "CSV's folder) or leave it empty.")
    return str(path.absolute())


def _predict(names: list[str], utts: list[UtteranceInput], model_dir: Path,
             extractor_configs: dict, tensor_config: TensorConfig,
             conversation: bool) -> list[dict]:
    """The extractors, a tensor cache of the utterances (one dialogue in turn order when
    ``conversation``, else each its own) and the model."""
    model, saved = load_model(model_dir)
    meta = saved["meta"]
    checkpoint = Path(model_dir) / MODEL
    extractor_configs, config, own = model_settings(saved, checkpoint, extractor_configs,
                                                    tensor_config)
    with tempfile.TemporaryDirectory(prefix="mcncl-predict-") as tmp:
        features = Path(tmp) / "features"
        missing: list[dict[str, str]] = [{} for _ in utts]
        for modality in meta["dims"]:  # each model input is the extraction stage of its name
            for i, failure in _extract(modality, extractor_configs[modality], utts, features):
                missing[i][modality] = failure.message
        usable = [utts[i] for i in range(len(utts)) if len(missing[i]) < len(meta["dims"])]
        manifest = Path(tmp) / "manifest.parquet"
        write_parquet(_manifest(usable, meta["labels"], conversation), manifest)
        probs = {}
        if usable:
            built = build_tensors(manifest, features, Path(tmp) / "tensors", config,
                                  meta["normalisation"])
            _same_features(saved, built["provenance"], checkpoint)
            split = load_split(Path(tmp) / "tensors", "test", torch.device("cpu"))
            rows, _ = predict(model, split, 64)
            probs = dict(zip(built["splits"]["test"], rows, strict=True))
    notes = [*own, *_notes(saved, extractor_configs, usable, config, conversation)]
    return [_result(name, utt, probs.get(utt.utterance_id), meta["labels"], gone, notes)
            for name, utt, gone in zip(names, utts, missing, strict=True)]


def model_settings(saved: dict, checkpoint: Path, extractor_configs: dict,
                   tensor_config: TensorConfig) -> tuple[dict, TensorConfig, list[str]]:
    """The extractor and tensor settings the model was trained with (``params.yaml``'s
    ``extractor_configs`` and ``tensor_config`` where it does not record them), and the notes
    to show: one naming the model's settings that differ from the params, or one saying the
    checkpoint records no provenance. Run-only settings (device, workers) stay the params'."""
    recorded = saved.get("provenance") or {}
    configs, differ = dict(extractor_configs), {}
    for modality, made in recorded.items():
        if modality not in configs or not isinstance(made, dict) or made.get("config") is None:
            continue  # the tensor settings and labels, or a table without a recorded config
        params = feature_settings(modality, asdict(configs[modality]))
        changed = {k: v for k, v in made["config"].items() if params.get(k) != v}
        try:
            configs[modality] = replace(configs[modality], **{
                k: tuple(v) if isinstance(v, list) else v for k, v in changed.items()})
        except TypeError as exc:
            raise PredictError(f"{checkpoint}: its {modality} settings "
                               f"({', '.join(changed)}) are unknown to this version; retrain "
                               "(`dvc repro`).") from exc
        differ.update({f"{modality}.{k}": v for k, v in changed.items()})
        for name in MODEL_FIELDS:
            folder = getattr(configs[modality], name, "")
            if folder and folder != PACKAGED_MODEL and not Path(folder).exists():
                raise PredictError(f"{checkpoint}: the model learnt from {modality} features "
                                   f"made with {folder}, which no longer exists; restore it, "
                                   "or retrain (`dvc repro`).")
    trained = saved["meta"].get("tensors")
    try:
        config = TensorConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in trained.items()}) if trained else tensor_config
    except TypeError as exc:
        raise PredictError(f"{checkpoint}: its tensor settings ({', '.join(trained)}) are not "
                           "all known to this version; retrain (`dvc repro`).") from exc
    params = json.loads(json.dumps(asdict(tensor_config)))
    differ.update({f"tensors.{k}": v for k, v in json.loads(json.dumps(asdict(config))).items()
                   if params.get(k) != v})
    notes = []
    if not saved.get("provenance"):
        notes.append(f"{checkpoint} does not record the features it was trained on (an "
                     "earlier version wrote it), so they cannot be checked; retrain to record "
                     "them.")
    if differ:
        notes.append("using the model's own feature settings (" + ", ".join(
            f"{k} {v}" for k, v in differ.items()) + "), which differ from params.yaml.")
    return configs, config, notes


def _same_features(saved: dict, made: dict, checkpoint: Path) -> None:
    """Refuse features that the model's own settings no longer make as they made its
    training features (the extractor's code or library changed: its ``version``)."""
    trained = saved.get("provenance")
    if not trained:
        return
    differ = provenance_diff(trained, {k: made.get(k) for k in trained if k in made})
    if differ:
        raise PredictError(f"{checkpoint} was trained on features made differently from what "
                           f"this version makes: {describe_diff(differ)}; run `dvc repro` to "
                           "retrain.")


def _result(clip: str, utt: UtteranceInput, probs, labels: list[str], missing: dict,
            notes: list[str]) -> dict:
    if probs is None:
        return {"clip": clip, "text": utt.text, "error": f"{clip}: nothing usable in it ("
                + "; ".join(missing.values()) + ")"}
    distribution = dict(zip(labels, (float(p) for p in probs), strict=True))
    return {"clip": clip, "text": utt.text,
            "predicted": max(distribution, key=distribution.get),
            "probabilities": dict(sorted(distribution.items(), key=lambda kv: -kv[1])),
            "masked": missing, "notes": notes}


def _notes(saved: dict, extractor_configs: dict, usable: list[UtteranceInput],
           config: TensorConfig, conversation: bool) -> list[str]:
    """What differs between these clips and the corpus the model learnt from."""
    notes = []
    speakers = {u.speaker for u in usable}
    scaled = {"acoustic", "facial"} & set(saved["meta"]["dims"])
    if config.speaker_norm == "speaker" and scaled and not conversation and (
            len(usable) < config.speaker_min_utterances):
        notes.append("acoustic/facial: the model learnt from features standardised per speaker; "
                     f"{len(usable)} clip(s) are too few to know their speaker (it takes "
                     f"{config.speaker_min_utterances}: give a folder of one speaker's clips), "
                     "so they are standardised with the training statistics instead.")
    context = saved["model_config"].get("context", "none")
    if context != "none" and not conversation:
        notes.append(f"dialogue context ({context}): the model reads each utterance with its "
                     "conversation, and these clips have none, so each is scored alone; give "
                     "the conversation as a CSV (mcncl predict conversation.csv) to use it.")
    if conversation and "" in speakers and len(speakers) > 1:
        notes.append("some turns name no speaker; give every row a speaker, as the model "
                     "learnt who speaks when.")
    history = extractor_configs["text"].context if "text" in saved["meta"]["dims"] else 0
    if history and not conversation:
        notes.append(f"text: the model learnt from transcripts with the {history} previous "
                     "turns of their dialogue; a lone clip has none, so its transcript is "
                     "encoded alone.")
    return notes


def _extract(stage: str, config, utts: list[UtteranceInput], features: Path
             ) -> list[tuple[int, Failure]]:
    """Write ``<stage>.parquet`` with the clips' rows (a failed clip has none: masked);
    return the failures by clip index."""
    extractor = make_extractor(stage, config)
    no_text = Failure("empty_text", "no transcript: give --text or a sidecar .txt file")
    skipped = {}  # what the extractor cannot read (no transcript, no media): masked
    for u in utts:
        check = extractor.digest(u)
        if isinstance(check, Failure):
            skipped[u.utterance_id] = no_text if stage == "text" else check
    todo = [u for u in utts if u.utterance_id not in skipped]
    try:
        done = dict(zip((u.utterance_id for u in todo), extractor.extract(todo) if todo else [],
                        strict=True))
    finally:
        if hasattr(extractor, "close"):
            extractor.close()
    results = [done[u.utterance_id] if u.utterance_id in done else skipped[u.utterance_id]
               for u in utts]
    write_stage_tables([(u.utterance_id, r) for u, r in zip(utts, results, strict=True)],
                       extractor, features)
    return [(i, r) for i, r in enumerate(results) if isinstance(r, Failure)]


def _manifest(utts: list[UtteranceInput], labels: list[str], conversation: bool) -> pa.Table:
    """The utterances in the test split (their label is a placeholder, never read back): one
    dialogue in turn order when ``conversation``, else each its own dialogue."""
    ids = [u.utterance_id for u in utts]
    n = len(ids)
    table = pa.table({"utterance_id": ids, "split": ["test"] * n, "label": [labels[0]] * n,
                      "dialogue_id": ["predict"] * n if conversation else ids,
                      "turn": list(range(n)) if conversation else [0] * n,
                      "speaker": [u.speaker for u in utts]})
    return table.replace_schema_metadata({"labels": json.dumps(labels), "corpus_root": "/"})
